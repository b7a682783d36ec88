"""The official OpenAI SDK (chat completions) against every upstream kind.

Usage: python matrix_openai.py BASE_URL CLIENT_KEY MODEL=LABEL [MODEL=LABEL ...]
Each MODEL is routed to one account whose mock label is LABEL. For each:
a call, a stream with usage, and a tool round trip, streamed and not.
"""

import json
import sys

import openai

base_url, key, pairs = sys.argv[1], sys.argv[2], [p.split("=") for p in sys.argv[3:]]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
system = {"role": "system", "content": "Be brief."}
question = {"role": "user", "content": "What is the weather in Paris?"}
tools = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}]


def stream_round(model, messages, **kw):
    text, calls, usage, finish = "", {}, None, None
    for chunk in client.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}, **kw
    ):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            text += d.content or ""
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                c["id"] = tc.id or c["id"]
                if tc.function:
                    c["name"] += tc.function.name or ""
                    c["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    return text, [calls[i] for i in sorted(calls)], usage, finish


for model, label in pairs:
    where = f"[openai client -> {model}]"
    r = client.chat.completions.create(model=model, messages=[system, question])
    assert r.choices[0].message.content == f"mock reply from {label}", (where, r)
    assert r.choices[0].finish_reason == "stop", (where, r)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens >= r.usage.prompt_tokens, (where, r.usage)

    text, _, usage, finish = stream_round(model, [system, question])
    assert text == f"mock reply from {label}", (where, text)
    assert finish == "stop", (where, finish)
    assert usage is not None and usage.total_tokens > 0, (where, usage)

    for streamed in (False, True):
        if streamed:
            _, calls, _, finish = stream_round(model, [system, question], tools=tools)
        else:
            r = client.chat.completions.create(model=model, messages=[system, question], tools=tools)
            finish = r.choices[0].finish_reason
            calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
                     for c in r.choices[0].message.tool_calls]
        assert finish == "tool_calls", (where, streamed, finish)
        assert len(calls) == 1 and calls[0]["name"] == "get_weather", (where, calls)
        assert json.loads(calls[0]["arguments"]) == {"city": "mock"}, (where, calls)
        history = [system, question,
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": c["id"], "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]},
                   {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"}]
        if streamed:
            text, _, _, _ = stream_round(model, history, tools=tools)
        else:
            text = client.chat.completions.create(model=model, messages=history, tools=tools).choices[0].message.content
        assert text == f"mock reply from {label} after tools: sunny", (where, streamed, text)
    # embeddings: the SDK asks for base64 by default and decodes it
    if label == "an":
        try:
            client.embeddings.create(model=model, input="hi")
            raise AssertionError(f"{where}: embeddings on anthropic accepted")
        except openai.BadRequestError as e:
            assert "embeddings" in str(e.message) and "anthropic" in str(e.message), (where, e.message)
    else:
        e = client.embeddings.create(model=model, input=["hi", "hello"])
        assert [d.embedding for d in e.data] == [[2.0, 1.0, -1.0], [5.0, 1.0, -1.0]], (where, e.data)
        assert e.usage.prompt_tokens > 0, (where, e.usage)
        floats = client.embeddings.create(model=model, input="abc", encoding_format="float")
        assert floats.data[0].embedding == [3.0, 1.0, -1.0], (where, floats)
    print(f"{where} ok")

print("openai matrix: all checks passed")
