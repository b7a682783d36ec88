"""Drives llmpool-proxy with the official OpenAI Python SDK.

Usage: python openai_client.py BASE_URL CLIENT_KEY
The proxy must serve: gpt-test (a healthy account labelled "a"),
busy-test (an account that answers 429), cut-test (a stream that breaks
off after the first content). Exits non-zero on the first failed check.
"""

import sys

import openai

base_url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]

reply = client.chat.completions.create(model="gpt-test", messages=messages)
assert reply.choices[0].message.content == "mock reply from a", reply
assert reply.choices[0].finish_reason == "stop", reply
assert reply.usage is not None and reply.usage.total_tokens > 0, reply.usage

text, usage = "", None
stream = client.chat.completions.create(
    model="gpt-test", messages=messages, stream=True, stream_options={"include_usage": True}
)
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == "mock reply from a", text
assert usage is not None and usage.total_tokens > 0, usage

ids = sorted(m.id for m in client.models.list())
assert ids == ["busy-test", "cut-test", "gpt-test"], ids

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e.body

try:
    client.chat.completions.create(model="busy-test", messages=messages)
    raise AssertionError("rate limit not raised")
except openai.RateLimitError as e:
    assert e.response.headers.get("retry-after"), e.response.headers
    assert e.code == "rate_limit_exceeded", e.body

try:
    bad = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong-key", max_retries=0)
    bad.chat.completions.create(model="gpt-test", messages=messages)
    raise AssertionError("wrong key accepted")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e.body

received = ""
try:
    for chunk in client.chat.completions.create(model="cut-test", messages=messages, stream=True):
        if chunk.choices:
            received += chunk.choices[0].delta.content or ""
    raise AssertionError("a broken stream ended cleanly")
except openai.APIError as e:
    assert str(e.message).startswith("upstream"), e.message
assert received == "mock reply from", received

print("openai sdk: all checks passed")
