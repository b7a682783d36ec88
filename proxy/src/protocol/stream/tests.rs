//! Stream translators between every pair, fed the way upstreams send them.

use serde_json::Value;

use super::*;
use crate::protocol::sse::Parser;

const ANTHROPIC: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"SIG\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"world\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":20}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

const OPENAI_PARALLEL: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"x\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"model\":\"gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":7,\"total_tokens\":37,\"prompt_tokens_details\":{\"cached_tokens\":10}}}\n\n",
    "data: [DONE]\n\n",
);

const GEMINI: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"plan\",\"thought\":true,\"thoughtSignature\":\"R1NJRw==\"}]}}],\"responseId\":\"r1\",\"modelVersion\":\"gemini\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]}}],\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}},{\"functionCall\":{\"name\":\"g\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2,\"totalTokenCount\":14},\"responseId\":\"r1\"}\r\n\r\n",
);

/// Feeds `text` in pieces of `step` bytes through the SSE parser and a
/// translator; returns what the client would receive.
fn translate(text: &str, from: Protocol, to: crate::pipeline::ClientApi, step: usize) -> String {
    let mut parser = Parser::new(1 << 20);
    let mut t = Translator::new(Decoder::new(from), to.encoder());
    let mut out = Vec::new();
    let mut events = Vec::new();
    for piece in text.as_bytes().chunks(step) {
        parser.feed(piece, &mut events);
        for e in events.drain(..) {
            t.feed(&e, &mut out).unwrap();
        }
    }
    t.end(&mut out);
    String::from_utf8(out).unwrap()
}

fn data_payloads(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

use crate::pipeline::ClientApi;

#[test]
fn anthropic_to_openai_keeps_text_thinking_tool_calls_and_usage() {
    let out = translate(
        ANTHROPIC,
        Protocol::Anthropic,
        ClientApi::Chat {
            include_usage: true,
        },
        4096,
    );
    let chunks = data_payloads(&out);
    let text: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str())
        .collect();
    assert_eq!(text, "Hello world");
    let thinking: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/reasoning_content")?.as_str())
        .collect();
    assert_eq!(thinking, "hmm");
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")?
                .as_str()
        })
        .collect();
    assert_eq!(args, "{\"city\":\"Paris\"}");
    let start = chunks
        .iter()
        .find(|c| c.pointer("/choices/0/delta/tool_calls/0/id").is_some())
        .unwrap();
    assert_eq!(
        start["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_1"
    );
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason")?.as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
    let usage = &chunks.last().unwrap()["usage"];
    // Anthropic input excludes cache reads; OpenAI's prompt_tokens include them
    assert_eq!(usage["prompt_tokens"], 15);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 5);
    assert_eq!(usage["completion_tokens"], 20);
    assert!(out.ends_with("data: [DONE]\n\n"));
}

#[test]
fn openai_parallel_tool_calls_become_sequential_anthropic_blocks() {
    let out = translate(OPENAI_PARALLEL, Protocol::OpenAi, ClientApi::Messages, 4096);
    let events: Vec<(String, Value)> = out
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (kind, data) = e.split_once('\n').unwrap();
            (
                kind.trim_start_matches("event: ").to_owned(),
                serde_json::from_str(data.trim_start_matches("data: ")).unwrap(),
            )
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1].1["content_block"]["id"], "call_a");
    assert_eq!(events[1].1["index"], 0);
    assert_eq!(events[5].1["content_block"]["name"], "g");
    assert_eq!(events[5].1["index"], 1);
    let args: String = events[2..4]
        .iter()
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{\"x\":1}");
    assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
    // OpenAI prompt_tokens include cached ones; Anthropic input excludes them
    assert_eq!(events[8].1["usage"]["input_tokens"], 20);
    assert_eq!(events[8].1["usage"]["cache_read_input_tokens"], 10);
}

#[test]
fn gemini_whole_calls_get_ids_and_thoughts_are_tagged_for_other_clients() {
    let out = translate(GEMINI, Protocol::Gemini, ClientApi::Messages, 4096);
    assert!(out.contains("\"thinking\":\"plan\""), "{out}");
    // Gemini's signature reaches an Anthropic client tagged with its origin
    let sig = crate::protocol::signature::for_client(
        &crate::protocol::ir::Signature {
            origin: Protocol::Gemini,
            value: "R1NJRw==".into(),
        },
        Protocol::Anthropic,
    );
    assert!(out.contains(&sig), "{out}");
    assert!(
        out.contains("\"id\":\"call_r1_0\"") && out.contains("\"id\":\"call_r1_1\""),
        "{out}"
    );
    assert!(out.contains("\"stop_reason\":\"tool_use\""), "{out}");
    // Gemini's output excludes thoughts; Anthropic's includes them
    assert!(out.contains("\"output_tokens\":6"), "{out}");
}

#[test]
fn openai_fragments_reach_gemini_clients_as_whole_calls() {
    let out = translate(
        OPENAI_PARALLEL,
        Protocol::OpenAi,
        ClientApi::Gemini {
            framing: GeminiFraming::Sse,
        },
        4096,
    );
    let chunks = data_payloads(&out);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/candidates/0/content/parts/0/functionCall"))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["args"], serde_json::json!({"x": 1}));
    assert_eq!(calls[1]["name"], "g");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 30);
}

#[test]
fn every_split_gives_the_same_translation() {
    for (text, from) in [
        (ANTHROPIC, Protocol::Anthropic),
        (OPENAI_PARALLEL, Protocol::OpenAi),
        (GEMINI, Protocol::Gemini),
    ] {
        for to in [
            ClientApi::Chat {
                include_usage: true,
            },
            ClientApi::Messages,
            ClientApi::Gemini {
                framing: GeminiFraming::Array,
            },
        ] {
            let whole = translate(text, from, to, usize::MAX);
            for step in [1, 2, 3, 7, 64] {
                // Chat chunks carry `created`, the same within one second
                assert_eq!(
                    translate(text, from, to, step),
                    whole,
                    "{from:?} -> {to:?}, step {step}"
                );
            }
        }
    }
}

#[test]
fn garbage_and_upstream_errors_are_errors_not_panics() {
    for from in [Protocol::OpenAi, Protocol::Anthropic, Protocol::Gemini] {
        let mut t = Translator::new(Decoder::new(from), ClientApi::Messages.encoder());
        let mut out = Vec::new();
        for data in [
            "not json",
            "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":\"x\"}]}}]}",
            "[1,2]",
            "{}",
            "null",
        ] {
            let event = Event {
                event: Some("content_block_delta".into()),
                data: data.into(),
            };
            let _ = t.feed(&event, &mut out);
        }
        t.end(&mut out);
    }
    let mut d = Decoder::new(Protocol::Anthropic);
    let err = d
        .feed(
            &Event { event: Some("error".into()), data: "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}".into() },
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err, StreamError::Upstream("busy".into()));
}
