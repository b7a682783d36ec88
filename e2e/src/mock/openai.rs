//! OpenAI-format bodies the mock sends.

use serde_json::{Value, json};

/// The reply text for a label in `chunks` pieces: the words of "mock reply
/// from <label>", spread over the pieces, then " ." for any extra piece.
pub fn reply_pieces(label: &str, chunks: usize) -> Vec<String> {
    let words: Vec<String> = format!("mock reply from {label}")
        .split(' ')
        .map(str::to_owned)
        .collect();
    let spread = chunks.clamp(1, words.len());
    let mut pieces = vec![String::new(); spread];
    for (i, w) in words.iter().enumerate() {
        let slot = i * spread / words.len();
        if i > 0 {
            pieces[slot].push(' ');
        }
        pieces[slot].push_str(w);
    }
    pieces.extend((spread..chunks).map(|_| " .".to_owned()));
    pieces
}

/// Usage numbers derived from the request size, so they are not constant.
pub fn usage(prompt_bytes: usize, completion_tokens: u64) -> Value {
    let prompt = (prompt_bytes as u64 / 4).max(1);
    json!({"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens})
}

/// A whole chat completion.
pub fn completion(model: &str, label: &str, prompt_bytes: usize) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("mock reply from {label}"), "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": usage(prompt_bytes, 4)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_to_the_reply() {
        for n in 1..5 {
            let pieces = reply_pieces("acct-a", n);
            assert_eq!(pieces.len(), n);
            assert_eq!(pieces.concat(), "mock reply from acct-a", "{n} chunks");
        }
        assert_eq!(reply_pieces("a", 6).concat(), "mock reply from a . .");
    }
}
