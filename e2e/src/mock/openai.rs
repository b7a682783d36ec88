//! The mock's OpenAI chat wire format, with OpenAI's check that translation
//! could break: an assistant turn's tool calls are each answered by a tool
//! message before anything else.

use serde_json::{Value, json};

use super::reply::{Plan, Turn};

/// Reads and checks a request; the error is the 400 message.
pub fn turn(req: &Value) -> Result<Turn, String> {
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages is required")?;
    for (i, m) in messages.iter().enumerate() {
        let ids: Vec<&str> = m["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
            .collect();
        for id in &ids {
            let answered = messages[i + 1..]
                .iter()
                .take_while(|n| n["role"] == "tool")
                .any(|n| n["tool_call_id"].as_str() == Some(id));
            if !answered {
                return Err(format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. Missing: {id} (messages[{i}])"
                ));
            }
        }
    }
    let tool_results = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let tools = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t.pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                t.pointer("/function/parameters")
                    .cloned()
                    .unwrap_or(Value::Null),
            )
        })
        .collect();
    Ok(Turn {
        tools,
        tool_results,
        thinking: false,
    })
}

fn tool_calls(plan: &Plan) -> Vec<Value> {
    plan.calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": format!("call_mock{i}"), "type": "function",
                "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect()
}

/// A whole completion answering with `plan`.
pub fn whole(model: &str, plan: &Plan, prompt_bytes: usize) -> Value {
    let mut message = json!({"role": "assistant", "content": plan.text, "refusal": null});
    if !plan.calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls(plan));
    }
    if let Some(t) = &plan.thinking {
        message["reasoning_content"] = json!(t);
    }
    let finish = if plan.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(prompt_bytes, 4)
    })
}

/// The content chunks of a streamed `plan` (after the role chunk, before
/// the finish): reasoning, text pieces, then tool calls in fragments.
pub fn content_chunks(model: &str, plan: &Plan, chunks: usize) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = &plan.thinking {
        out.push(chunk(model, json!({"reasoning_content": t}), None));
    }
    if let Some(t) = &plan.text {
        for p in super::reply::pieces(t, chunks) {
            out.push(chunk(model, json!({"content": p}), None));
        }
    }
    for (i, call) in tool_calls(plan).into_iter().enumerate() {
        let args = call["function"]["arguments"]
            .as_str()
            .unwrap_or("{}")
            .to_owned();
        let (a, b) = args.split_at(args.len() / 2);
        out.push(chunk(
            model,
            json!({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]}),
            None,
        ));
        out.push(chunk(
            model,
            json!({"tool_calls": [{"index": i, "function": {"arguments": a}}]}),
            None,
        ));
        out.push(chunk(
            model,
            json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}),
            None,
        ));
    }
    out
}

/// Usage numbers derived from the request size, so they are not constant.
pub fn usage(prompt_bytes: usize, completion_tokens: u64) -> Value {
    let prompt = (prompt_bytes as u64 / 4).max(1);
    json!({"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens})
}

/// One stream chunk.
pub fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let v = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {v}\n\n")
}

/// The usage chunk sent when `stream_options.include_usage` is set.
pub fn usage_chunk(model: &str, prompt_bytes: usize, completion_tokens: u64) -> String {
    let v = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [],
        "usage": usage(prompt_bytes, completion_tokens)
    });
    format!("data: {v}\n\n")
}

/// An OpenAI error body.
pub fn error(status: u16, code: Option<&str>) -> Value {
    let (kind, default_code, message) = match status {
        429 => (
            "rate_limit_error",
            "rate_limit_exceeded",
            "Rate limit reached for requests (mock).",
        ),
        401 => (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided (mock).",
        ),
        403 => (
            "permission_error",
            "permission_denied",
            "Not allowed (mock).",
        ),
        400 => (
            "invalid_request_error",
            "invalid_value",
            "Bad request (mock).",
        ),
        404 => (
            "invalid_request_error",
            "model_not_found",
            "No such model (mock).",
        ),
        503 | 529 => (
            "server_error",
            "overloaded",
            "The server is overloaded (mock).",
        ),
        _ => (
            "server_error",
            "server_error",
            "The server had an error (mock).",
        ),
    };
    let code = code.unwrap_or(default_code);
    let kind = if code == "insufficient_quota" {
        "insufficient_quota"
    } else {
        kind
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}
