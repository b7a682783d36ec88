//! Embeddings between OpenAI (`/v1/embeddings`) and Gemini
//! (`:embedContent`, `:batchEmbedContents`). Anthropic has none. OpenAI's
//! `encoding_format: base64` (little-endian f32s, what the OpenAI SDK asks
//! for by default) is honoured whatever the upstream returns.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Protocol, TranslateError};

/// An embedding request in neutral form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmbedRequest {
    /// Texts to embed.
    pub inputs: Vec<String>,
    /// Output dimensions.
    pub dimensions: Option<u64>,
    /// Gemini `taskType`, kept for Gemini.
    pub task_type: Option<String>,
}

/// Vectors and the tokens they cost, when the upstream says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embedded {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Prompt tokens reported.
    pub tokens: Option<u64>,
}

/// Whether an OpenAI embeddings request asks for base64.
pub fn wants_base64(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("encoding_format")
                .and_then(Value::as_str)
                .map(|f| f == "base64")
        })
        .unwrap_or(false)
}

/// Decodes an OpenAI embeddings request.
pub fn decode_openai(body: &[u8]) -> Result<EmbedRequest, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let inputs = match v.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Array(_)) => {
            return Err(TranslateError::unsupported(
                "token-array embedding input",
                Protocol::Gemini,
            ));
        }
        _ => {
            return Err(TranslateError::Bad(
                "input must be a string or a list of strings".into(),
            ));
        }
    };
    Ok(EmbedRequest {
        inputs,
        dimensions: v.get("dimensions").and_then(Value::as_u64),
        task_type: None,
    })
}

/// Decodes a Gemini `:embedContent` (or `:batchEmbedContents`) request.
pub fn decode_gemini(body: &[u8], batch: bool) -> Result<EmbedRequest, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let one = |r: &Value| -> String {
        r.pointer("/content/parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let requests: Vec<&Value> = if batch {
        v.get("requests")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .collect()
    } else {
        vec![&v]
    };
    let first = requests.first().copied().unwrap_or(&Value::Null);
    Ok(EmbedRequest {
        inputs: requests.iter().map(|r| one(r)).collect(),
        dimensions: first
            .get("outputDimensionality")
            .or_else(|| first.get("output_dimensionality"))
            .and_then(Value::as_u64),
        task_type: first
            .get("taskType")
            .or_else(|| first.get("task_type"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// An OpenAI embeddings request for `model`.
pub fn encode_openai(req: &EmbedRequest, model: &str) -> Value {
    let mut v = json!({"model": model, "input": req.inputs, "encoding_format": "float"});
    if let Some(d) = req.dimensions {
        v["dimensions"] = json!(d);
    }
    v
}

/// A Gemini `:batchEmbedContents` request for `model`.
pub fn encode_gemini(req: &EmbedRequest, model: &str) -> Value {
    let requests: Vec<Value> = req
        .inputs
        .iter()
        .map(|text| {
            let mut r =
                json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(d) = req.dimensions {
                r["outputDimensionality"] = json!(d);
            }
            if let Some(t) = &req.task_type {
                r["taskType"] = json!(t);
            }
            r
        })
        .collect();
    json!({"requests": requests})
}

/// Points every request of a Gemini batch at `model` (the model in each
/// request must match the one in the URL).
pub fn retarget_gemini_batch(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    for r in v.get_mut("requests")?.as_array_mut()? {
        r["model"] = json!(format!("models/{model}"));
    }
    serde_json::to_vec(&v).ok()
}

fn vector(v: &Value) -> Option<Vec<f32>> {
    match v {
        Value::Array(xs) => Some(
            xs.iter()
                .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                .collect(),
        ),
        Value::String(b64) => {
            let bytes = STANDARD.decode(b64).ok()?;
            Some(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Decodes an OpenAI embeddings response (float or base64 vectors).
pub fn decode_openai_response(body: &[u8]) -> Option<Embedded> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let mut items: Vec<&Value> = v.get("data")?.as_array()?.iter().collect();
    items.sort_by_key(|d| d.get("index").and_then(Value::as_u64).unwrap_or(0));
    Some(Embedded {
        vectors: items
            .iter()
            .map(|d| vector(&d["embedding"]))
            .collect::<Option<_>>()?,
        tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
    })
}

/// Decodes a Gemini embedding response (one or a batch).
pub fn decode_gemini_response(body: &[u8]) -> Option<Embedded> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let vectors = match (v.get("embeddings"), v.get("embedding")) {
        (Some(Value::Array(list)), _) => list
            .iter()
            .map(|e| vector(&e["values"]))
            .collect::<Option<_>>()?,
        (_, Some(one)) => vec![vector(&one["values"])?],
        _ => return None,
    };
    Some(Embedded {
        vectors,
        tokens: None,
    })
}

/// An OpenAI embeddings response; `estimate` is used when the upstream
/// reported no token count.
pub fn encode_openai_response(e: &Embedded, model: &str, base64: bool, estimate: u64) -> Value {
    let data: Vec<Value> = e
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens = e.tokens.unwrap_or(estimate);
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}

/// A Gemini embedding response (`embedding` for one, `embeddings` for a batch).
pub fn encode_gemini_response(e: &Embedded, batch: bool) -> Value {
    let values: Vec<Value> = e.vectors.iter().map(|v| json!({"values": v})).collect();
    if batch {
        json!({"embeddings": values})
    } else {
        json!({"embedding": values.into_iter().next().unwrap_or_else(|| json!({"values": []}))})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32_both_ways() {
        let e = Embedded {
            vectors: vec![vec![1.0, -0.5]],
            tokens: Some(3),
        };
        let out = encode_openai_response(&e, "m", true, 0);
        let b64 = out["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), [0, 0, 128, 63, 0, 0, 0, 191]);
        let back = decode_openai_response(out.to_string().as_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            encode_openai_response(&e, "m", false, 0)["data"][0]["embedding"],
            json!([1.0, -0.5])
        );
    }

    #[test]
    fn openai_and_gemini_requests_convert() {
        let req = decode_openai(br#"{"model":"m","input":["a","b"],"dimensions":8}"#).unwrap();
        let g = encode_gemini(&req, "text-embedding-004");
        assert_eq!(g["requests"][1]["content"]["parts"][0]["text"], "b");
        assert_eq!(g["requests"][0]["model"], "models/text-embedding-004");
        assert_eq!(g["requests"][0]["outputDimensionality"], 8);
        let back = decode_gemini(g.to_string().as_bytes(), true).unwrap();
        assert_eq!(back.inputs, ["a", "b"]);
        assert!(
            decode_openai(br#"{"model":"m","input":[[1,2]]}"#)
                .unwrap_err()
                .to_string()
                .contains("token-array")
        );
        let single = decode_gemini(br#"{"content":{"parts":[{"text":"x"}]}}"#, false).unwrap();
        assert_eq!(single.inputs, ["x"]);
    }
}
