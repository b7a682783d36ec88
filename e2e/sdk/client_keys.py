"""Client keys as each official SDK sees them: a good key works, an unknown
key is an authentication error, a model outside the key's list is a
permission error, and a key over its request limit is a rate-limit error
with a retry hint, each in the SDK's own error type.

Usage: python client_keys.py BASE_URL GOOD_KEY LIMITED_KEY
GOOD_KEY may use gpt-test only; LIMITED_KEY may make one request a minute.
"""

import sys

import anthropic
import openai
from google import genai
from google.genai import errors, types

base_url, good, limited = sys.argv[1], sys.argv[2], sys.argv[3]


def expect(what, call, error_type, status, check=None):
    try:
        call()
    except error_type as e:
        code = getattr(e, "status_code", None) or getattr(e, "code", None)
        assert code == status, (what, code, e)
        if check:
            check(e)
        return
    raise AssertionError(f"{what}: no {error_type.__name__}")


def has_retry_after(e):
    assert int(e.response.headers["retry-after"]) >= 1, e.response.headers


def mentions(text):
    def check(e):
        assert text in str(e), e
    return check


def gemini_status(name):
    def check(e):
        assert e.status == name, (e.status, e)
    return check


def run_openai():
    def client(key):
        return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)

    msgs = [{"role": "user", "content": "Say hi"}]
    r = client(good).chat.completions.create(model="gpt-test", messages=msgs)
    assert r.choices[0].message.content.startswith("mock reply"), r
    listed = [m.id for m in client(good).models.list()]
    assert listed == ["gpt-test"], listed
    expect("openai unknown key", lambda: client("sk-nobody-0000000000").chat.completions.create(
        model="gpt-test", messages=msgs), openai.AuthenticationError, 401)
    expect("openai model not allowed", lambda: client(good).chat.completions.create(
        model="other-test", messages=msgs), openai.PermissionDeniedError, 403,
        mentions("other-test"))
    expect("openai over the limit", lambda: client(limited).chat.completions.create(
        model="gpt-test", messages=msgs), openai.RateLimitError, 429, has_retry_after)


def run_anthropic():
    def client(key):
        return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)

    msgs = [{"role": "user", "content": "Say hi"}]
    r = client(good).messages.create(model="gpt-test", max_tokens=64, messages=msgs)
    assert r.content[0].text.startswith("mock reply"), r
    expect("anthropic unknown key", lambda: client("sk-nobody-0000000000").messages.create(
        model="gpt-test", max_tokens=64, messages=msgs), anthropic.AuthenticationError, 401)
    expect("anthropic model not allowed", lambda: client(good).messages.create(
        model="other-test", max_tokens=64, messages=msgs), anthropic.PermissionDeniedError, 403,
        mentions("other-test"))
    expect("anthropic over the limit", lambda: client(limited).messages.create(
        model="gpt-test", max_tokens=64, messages=msgs), anthropic.RateLimitError, 429, has_retry_after)


def run_gemini():
    # the SDK closes its connection when a client is collected: keep each
    def client(key):
        return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url))

    ok, nobody, over = client(good), client("sk-nobody-0000000000"), client(limited)
    r = ok.models.generate_content(model="gpt-test", contents="Say hi")
    assert r.text.startswith("mock reply"), r
    expect("gemini unknown key", lambda: nobody.models.generate_content(
        model="gpt-test", contents="Say hi"), errors.ClientError, 401,
        gemini_status("UNAUTHENTICATED"))
    expect("gemini model not allowed", lambda: ok.models.generate_content(
        model="other-test", contents="Say hi"), errors.ClientError, 403,
        gemini_status("PERMISSION_DENIED"))
    expect("gemini over the limit", lambda: over.models.generate_content(
        model="gpt-test", contents="Say hi"), errors.ClientError, 429,
        gemini_status("RESOURCE_EXHAUSTED"))


# the limited key's one request of the minute; every SDK then sees it refused
openai.OpenAI(base_url=f"{base_url}/v1", api_key=limited, max_retries=0).chat.completions.create(
    model="gpt-test", messages=[{"role": "user", "content": "Say hi"}])
run_openai()
run_anthropic()
run_gemini()
print("all checks passed")
