"""The official Google Gen AI SDK against every upstream kind, on one API
version (v1beta or v1).

Usage: python matrix_gemini.py BASE_URL CLIENT_KEY API_VERSION MODEL=LABEL [...]
For each MODEL: a call, a stream, and a tool round trip streamed and not.
"""

import sys

from google import genai
from google.genai import errors, types

base_url, key, version = sys.argv[1], sys.argv[2], sys.argv[3]
pairs = [p.split("=") for p in sys.argv[4:]]
client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url, api_version=version))
weather = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
config = types.GenerateContentConfig(system_instruction="Be brief.")
tool_config = types.GenerateContentConfig(
    system_instruction="Be brief.",
    tools=[types.Tool(function_declarations=[weather])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])


def ask(model, contents, streamed, cfg):
    if not streamed:
        r = client.models.generate_content(model=model, contents=contents, config=cfg)
        return r.text or "", list(r.function_calls or []), r.candidates[0].content, r.usage_metadata
    text, calls, parts, usage = "", [], [], None
    for chunk in client.models.generate_content_stream(model=model, contents=contents, config=cfg):
        if chunk.candidates and chunk.candidates[0].content and chunk.candidates[0].content.parts:
            for p in chunk.candidates[0].content.parts:
                parts.append(p)
                if p.text and not p.thought:
                    text += p.text
                if p.function_call:
                    calls.append(p.function_call)
        usage = chunk.usage_metadata or usage
    return text, calls, types.Content(role="model", parts=parts), usage


for model, label in pairs:
    where = f"[gemini client {version} -> {model}]"
    for streamed in (False, True):
        text, _, _, usage = ask(model, [question], streamed, config)
        assert text == f"mock reply from {label}", (where, streamed, text)
        assert usage is not None and usage.total_token_count > 0, (where, streamed, usage)

        _, calls, content, _ = ask(model, [question], streamed, tool_config)
        assert len(calls) == 1 and calls[0].name == "get_weather", (where, streamed, calls)
        assert calls[0].args == {"city": "mock"}, (where, streamed, calls)
        answer = types.Content(role="user", parts=[
            types.Part(function_response=types.FunctionResponse(
                name="get_weather", id=calls[0].id, response={"result": "sunny"}))])
        text, _, _, _ = ask(model, [question, content, answer], streamed, tool_config)
        assert text == f"mock reply from {label} after tools: sunny", (where, streamed, text)
    n = client.models.count_tokens(model=model, contents="hello").total_tokens
    if label in ("an", "ge"):
        assert n == len("hello"), (where, n)
    else:
        assert 0 < n < 20, (where, n)
    if label == "an":
        try:
            client.models.embed_content(model=model, contents=["hi"])
            raise AssertionError(f"{where}: embeddings on anthropic accepted")
        except errors.ClientError as e:
            assert e.code == 400 and "embeddings" in str(e.message), (where, e.message)
    else:
        r = client.models.embed_content(model=model, contents=["hi", "hello"])
        assert [list(x.values) for x in r.embeddings] == [[2.0, 1.0, -1.0], [5.0, 1.0, -1.0]], (where, r)
        one = client.models.embed_content(model=model, contents="abc")
        assert list(one.embeddings[0].values) == [3.0, 1.0, -1.0], (where, one)
    print(f"{where} ok")

try:
    client.models.generate_content(model="no-such-model", contents="hi")
    raise AssertionError("unknown model accepted")
except errors.ClientError as e:
    assert e.code == 404 and e.status == "NOT_FOUND", (e.code, e.status)

print("gemini matrix: all checks passed")
