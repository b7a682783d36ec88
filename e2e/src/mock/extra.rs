//! The mock's embeddings (OpenAI `/v1/embeddings`, Gemini `:embedContent`
//! and `:batchEmbedContents`) and token counters (Anthropic
//! `/v1/messages/count_tokens`, Gemini `:countTokens`). Answers are
//! deterministic so tests can tell what crossed: a text's vector is
//! `[characters, 1, -1]`, and a count is the number of characters of every
//! text in the request (system prompt included), the same on both counters.

use serde_json::{Value, json};

fn vector(text: &str) -> Value {
    json!([text.chars().count() as f64, 1.0, -1.0])
}

/// OpenAI embeddings: always floats, whatever `encoding_format` says (as
/// some OpenAI-compatible servers do).
pub fn openai_embeddings(req: &Value) -> Result<Value, String> {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => return Err("input is required".into()),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector(t)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.len() / 4 + 1).sum();
    Ok(
        json!({"object": "list", "data": data, "model": req["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

fn content_text(r: &Value) -> String {
    r.pointer("/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// Gemini embeddings; a batch must name the URL's model in every request.
pub fn gemini_embeddings(req: &Value, model: &str, batch: bool) -> Result<Value, String> {
    if !batch {
        return Ok(json!({"embedding": {"values": vector(&content_text(req))}}));
    }
    let mut out = Vec::new();
    for (i, r) in req["requests"].as_array().into_iter().flatten().enumerate() {
        if r["model"].as_str() != Some(&format!("models/{model}")) {
            return Err(format!("requests[{i}].model must be models/{model}"));
        }
        out.push(json!({"values": vector(&content_text(r))}));
    }
    Ok(json!({"embeddings": out}))
}

/// Characters of every text in a request.
pub fn count_chars(v: &Value) -> u64 {
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text" | "content" | "system", Value::String(s)) => s.chars().count() as u64,
                _ => count_chars(v),
            })
            .sum(),
        Value::Array(a) => a.iter().map(count_chars).sum(),
        _ => 0,
    }
}

/// Anthropic's count_tokens answer.
pub fn anthropic_count(req: &Value) -> Value {
    let mut v = req.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
    }
    json!({"input_tokens": count_chars(&v)})
}

/// Gemini's countTokens answer.
pub fn gemini_count(req: &Value) -> Value {
    let mut v = req
        .get("generateContentRequest")
        .cloned()
        .unwrap_or_else(|| req.clone());
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
    }
    json!({"totalTokens": count_chars(&v)})
}
