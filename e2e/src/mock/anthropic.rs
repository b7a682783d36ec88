//! The mock's Anthropic Messages wire format, with the checks Anthropic
//! makes that translation could break: `max_tokens`, alternation starting
//! with a user turn, every `tool_use` answered first thing in the next user
//! turn, thinking signatures that only the mock's own "Anthropic" issued,
//! and, with thinking on, a tool loop's last assistant turn starting with
//! thinking.

use serde_json::{Value, json};

use super::reply::{Plan, Turn, anthropic_signature};

/// Reads and checks a request; the error is the 400 message.
pub fn turn(req: &Value) -> Result<Turn, String> {
    if req.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Err("max_tokens: Field required".into());
    }
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    if messages.first().and_then(|m| m["role"].as_str()) != Some("user") {
        return Err("messages: first message must use the \"user\" role".into());
    }
    let thinking = req.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled");
    if thinking
        && req
            .get("temperature")
            .is_some_and(|t| t.as_f64() != Some(1.0))
    {
        return Err("`temperature` may only be set to 1 when thinking is enabled".into());
    }
    let blocks = |m: &Value| -> Vec<Value> {
        match &m["content"] {
            Value::Array(a) => a.clone(),
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            _ => Vec::new(),
        }
    };
    for (i, m) in messages.iter().enumerate() {
        if i > 0 && messages[i - 1]["role"] == m["role"] {
            return Err(format!("messages.{i}: roles must alternate"));
        }
        for b in blocks(m) {
            match b["type"].as_str() {
                Some("thinking") => {
                    let text = b["thinking"].as_str().unwrap_or_default();
                    if b["signature"].as_str() != Some(anthropic_signature(text).as_str()) {
                        return Err(format!(
                            "messages.{i}: Invalid `signature` in `thinking` block"
                        ));
                    }
                }
                Some("text") if b["text"].as_str().is_some_and(str::is_empty) => {
                    return Err(format!(
                        "messages.{i}: text content blocks must be non-empty"
                    ));
                }
                _ => {}
            }
        }
        if m["role"] == "assistant" {
            let ids: Vec<String> = blocks(m)
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .filter_map(|b| b["id"].as_str().map(str::to_owned))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let next = messages.get(i + 1).map(blocks).unwrap_or_default();
            let results: Vec<&str> = next
                .iter()
                .take_while(|b| b["type"] == "tool_result")
                .filter_map(|b| b["tool_use_id"].as_str())
                .collect();
            if messages.get(i + 1).is_some() && ids.iter().any(|id| !results.contains(&id.as_str()))
            {
                return Err(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after",
                    i
                ));
            }
        }
    }
    let last = messages.last().map(blocks).unwrap_or_default();
    let tool_results: Vec<String> = last
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| match &b["content"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        })
        .collect();
    if thinking && !tool_results.is_empty() {
        let last_assistant = messages.iter().rev().find(|m| m["role"] == "assistant");
        let first = last_assistant.map(blocks).and_then(|b| b.first().cloned());
        if !first
            .is_some_and(|b| matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")))
        {
            return Err("Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block".into());
        }
    }
    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["input_schema"].clone(),
            )
        })
        .collect();
    Ok(Turn {
        tools,
        tool_results,
        thinking,
    })
}

fn usage(prompt_bytes: usize, output: u64, cached: u64) -> Value {
    json!({
        "input_tokens": (prompt_bytes as u64 / 4).max(1),
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached
    })
}

fn call_id(n: usize) -> String {
    format!("toolu_mock{n}")
}

/// A whole response.
pub fn whole(model: &str, plan: &Plan, prompt_bytes: usize, cached: u64) -> Value {
    let mut content = Vec::new();
    if let Some(t) = &plan.thinking {
        content
            .push(json!({"type": "thinking", "thinking": t, "signature": anthropic_signature(t)}));
    }
    if let Some(t) = &plan.text {
        content.push(json!({"type": "text", "text": t}));
    }
    for (i, (name, args)) in plan.calls.iter().enumerate() {
        content.push(json!({"type": "tool_use", "id": call_id(i), "name": name, "input": args}));
    }
    let stop = if plan.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": usage(prompt_bytes, 4, cached)
    })
}

fn event(kind: &str, data: Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The events of a streamed response.
pub fn stream(
    model: &str,
    plan: &Plan,
    prompt_bytes: usize,
    cached: u64,
    chunks: usize,
) -> Vec<String> {
    let mut out = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(prompt_bytes, 1, cached)}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let mut index = 0;
    let mut block = |start: Value, deltas: Vec<Value>, out: &mut Vec<String>| {
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for d in deltas {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": d}),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    };
    if let Some(t) = &plan.thinking {
        block(
            json!({"type": "thinking", "thinking": "", "signature": ""}),
            vec![
                json!({"type": "thinking_delta", "thinking": t}),
                json!({"type": "signature_delta", "signature": anthropic_signature(t)}),
            ],
            &mut out,
        );
    }
    if let Some(t) = &plan.text {
        let deltas = super::reply::pieces(t, chunks)
            .into_iter()
            .map(|p| json!({"type": "text_delta", "text": p}))
            .collect();
        block(json!({"type": "text", "text": ""}), deltas, &mut out);
    }
    for (i, (name, args)) in plan.calls.iter().enumerate() {
        let text = args.to_string();
        let (a, b) = text.split_at(text.len() / 2);
        block(
            json!({"type": "tool_use", "id": call_id(i), "name": name, "input": {}}),
            vec![
                json!({"type": "input_json_delta", "partial_json": ""}),
                json!({"type": "input_json_delta", "partial_json": a}),
                json!({"type": "input_json_delta", "partial_json": b}),
            ],
            &mut out,
        );
    }
    let stop = if plan.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    out.push(event(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 4}}),
    ));
    out.push(event("message_stop", json!({"type": "message_stop"})));
    out
}

/// An error body.
pub fn error(status: u16) -> Value {
    let (kind, message) = match status {
        429 => (
            "rate_limit_error",
            "Number of requests has exceeded your rate limit (mock).",
        ),
        401 => ("authentication_error", "invalid x-api-key (mock)"),
        403 => ("permission_error", "Not allowed (mock)."),
        404 => ("not_found_error", "model: not found (mock)"),
        400 => ("invalid_request_error", "Bad request (mock)."),
        529 => ("overloaded_error", "Overloaded (mock)."),
        _ => ("api_error", "Internal server error (mock)."),
    };
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"})
}

/// A 400 for a request the mock's checks refused.
pub fn invalid(message: &str) -> Value {
    json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
}

/// An error event inside a 200 stream.
pub fn error_event() -> String {
    event(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (mock)."}}),
    )
}
