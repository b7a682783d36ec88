"""The official OpenAI SDK's Responses API against every upstream kind.

Usage: python matrix_responses.py BASE_URL CLIENT_KEY MODEL=LABEL [...]
For each MODEL: a call, a stream, and a function-call round trip streamed
and not (store=false conversations). A model whose label is `op` is an
OpenAI account: there `previous_response_id` continues a stored response;
elsewhere it is refused with a 400 naming the feature.
"""

import sys

import openai

base_url, key, pairs = sys.argv[1], sys.argv[2], [p.split("=") for p in sys.argv[3:]]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
question = "What is the weather in Paris?"
tools = [{
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False},
    "strict": True,
}]


def run(model, streamed, **kw):
    if not streamed:
        return client.responses.create(model=model, instructions="Be brief.", store=False, **kw)
    final, deltas, kinds = None, "", []
    for event in client.responses.create(model=model, instructions="Be brief.", store=False, stream=True, **kw):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas += event.delta
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert kinds[0] == "response.created", kinds
    assert final is not None, kinds
    assert deltas == final.output_text, (deltas, final.output_text)
    return final


for model, label in pairs:
    where = f"[responses client -> {model}]"
    for streamed in (False, True):
        r = run(model, streamed, input=question)
        assert r.output_text == f"mock reply from {label}", (where, streamed, r)
        assert r.usage.input_tokens > 0 and r.usage.total_tokens > r.usage.input_tokens, (where, r.usage)

        r = run(model, streamed, input=question, tools=tools)
        calls = [i for i in r.output if i.type == "function_call"]
        assert len(calls) == 1 and calls[0].name == "get_weather", (where, streamed, r.output)
        history = [{"role": "user", "content": question},
                   {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
                    "arguments": calls[0].arguments},
                   {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}]
        r = run(model, streamed, input=history, tools=tools)
        assert r.output_text == f"mock reply from {label} after tools: sunny", (where, streamed, r)

    if label == "op":
        first = client.responses.create(model=model, input=question)
        again = client.responses.create(model=model, input="And tomorrow?", previous_response_id=first.id)
        assert again.output_text == f"mock reply from {label}", (where, again)
    else:
        try:
            client.responses.create(model=model, input="more", previous_response_id="resp_nowhere")
            raise AssertionError(f"{where}: previous_response_id accepted")
        except openai.BadRequestError as e:
            assert "previous_response_id" in str(e.message), (where, e.message)
    print(f"{where} ok")

print("responses matrix: all checks passed")
