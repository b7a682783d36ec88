"""The official Anthropic SDK against every upstream kind.

Usage: python matrix_anthropic.py BASE_URL CLIENT_KEY MODEL=LABEL [MODEL=LABEL ...]
For each MODEL: a call, a stream, a tool round trip streamed and not, and
a thinking tool loop whose history (signed thinking included) goes back.
"""

import sys

import anthropic

base_url, key, pairs = sys.argv[1], sys.argv[2], [p.split("=") for p in sys.argv[3:]]
client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)
question = {"role": "user", "content": "What is the weather in Paris?"}
tools = [{
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}]


def ask(model, messages, streamed, **kw):
    if streamed:
        with client.messages.stream(model=model, max_tokens=4096, system="Be brief.", messages=messages, **kw) as s:
            return s.get_final_message()
    return client.messages.create(model=model, max_tokens=4096, system="Be brief.", messages=messages, **kw)


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


for model, label in pairs:
    where = f"[anthropic client -> {model}]"
    for streamed in (False, True):
        m = ask(model, [question], streamed)
        assert text_of(m) == f"mock reply from {label}", (where, streamed, m)
        assert m.stop_reason == "end_turn", (where, streamed, m)
        assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, (where, streamed, m.usage)

        m = ask(model, [question], streamed, tools=tools)
        assert m.stop_reason == "tool_use", (where, streamed, m)
        uses = [b for b in m.content if b.type == "tool_use"]
        assert len(uses) == 1 and uses[0].name == "get_weather" and uses[0].input == {"city": "mock"}, (where, m)
        history = [question,
                   {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]}]
        final = ask(model, history, streamed, tools=tools)
        assert text_of(final) == f"mock reply from {label} after tools: sunny", (where, streamed, final)

    # thinking on: the tool loop's history carries the thinking back
    thinking = {"type": "enabled", "budget_tokens": 2048}
    m = ask(model, [question], True, tools=tools, thinking=thinking)
    uses = [b for b in m.content if b.type == "tool_use"]
    assert uses, (where, m)
    history = [question,
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]}]
    final = ask(model, history, True, tools=tools, thinking=thinking)
    assert text_of(final) == f"mock reply from {label} after tools: sunny", (where, final)
    # token counts: the upstream's counter (characters in the mock), or
    # the local o200k_base estimate on OpenAI accounts
    n = client.messages.count_tokens(model=model, system="Be brief.",
                                     messages=[{"role": "user", "content": "hello"}]).input_tokens
    if label in ("an", "ge"):
        assert n == len("hello") + len("Be brief."), (where, n)
    else:
        assert 0 < n < 30, (where, n)
    print(f"{where} ok")

try:
    client.messages.create(model="no-such-model", max_tokens=10, messages=[question])
    raise AssertionError("unknown model accepted")
except anthropic.NotFoundError as e:
    assert e.body["error"]["type"] == "not_found_error", e.body

print("anthropic matrix: all checks passed")
