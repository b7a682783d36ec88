//! The mock's Gemini generateContent wire format, with the checks Gemini
//! makes that translation could break: schema keywords outside Gemini's
//! Schema are refused, a model turn's first function call needs a thought
//! signature the mock issued (Gemini 3's rule), thought signatures must be
//! the mock's own, and every function call is answered by a
//! `functionResponse` whose `response` is an object.

use serde_json::{Value, json};

use super::reply::{Plan, Turn, gemini_signature, gemini_signature_valid};

const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    for (k, v) in obj {
        if !SCHEMA_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field."
            ));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    check_schema(sub, &format!("{at}.properties[{name}]"))?;
                }
            }
            "items" => check_schema(v, &format!("{at}.items"))?,
            "anyOf" => {
                for sub in v.as_array().into_iter().flatten() {
                    check_schema(sub, &format!("{at}.anyOf"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads and checks a request; the error is the 400 message.
pub fn turn(req: &Value) -> Result<Turn, String> {
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("contents is required")?;
    let mut tools = Vec::new();
    for t in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for d in t["functionDeclarations"].as_array().into_iter().flatten() {
            check_schema(&d["parameters"], "tools.function_declarations.parameters")?;
            tools.push((
                d["name"].as_str().unwrap_or_default().to_owned(),
                d["parameters"].clone(),
            ));
        }
    }
    let mut expected_responses = 0;
    for (i, c) in contents.iter().enumerate() {
        let parts = c["parts"].as_array().cloned().unwrap_or_default();
        if c["role"] == "model" {
            let calls: Vec<&Value> = parts
                .iter()
                .filter(|p| p.get("functionCall").is_some())
                .collect();
            if let Some(first) = calls.first()
                && !first["thoughtSignature"]
                    .as_str()
                    .is_some_and(gemini_signature_valid)
            {
                return Err(format!(
                    "Function call is missing a thought_signature in functionCall parts (contents[{i}])"
                ));
            }
            expected_responses = calls.len();
        } else {
            let responses: Vec<&Value> = parts
                .iter()
                .filter_map(|p| p.get("functionResponse"))
                .collect();
            if responses.len() != expected_responses {
                return Err(format!(
                    "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn (contents[{i}])"
                ));
            }
            if responses.iter().any(|r| !r["response"].is_object()) {
                return Err(format!(
                    "contents[{i}]: functionResponse.response must be an object"
                ));
            }
            expected_responses = 0;
        }
        for p in &parts {
            if let Some(sig) = p["thoughtSignature"].as_str()
                && !gemini_signature_valid(sig)
            {
                return Err(format!("contents[{i}]: Corrupted thought signature."));
            }
        }
    }
    let last = contents.last().cloned().unwrap_or(Value::Null);
    let tool_results = last["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| match r.pointer("/response/result") {
            Some(Value::String(s)) => s.clone(),
            _ => r["response"].to_string(),
        })
        .collect();
    let thinking = req
        .pointer("/generationConfig/thinkingConfig/includeThoughts")
        .and_then(Value::as_bool)
        == Some(true);
    Ok(Turn {
        tools,
        tool_results,
        thinking,
    })
}

fn usage(prompt_bytes: usize, thinking: bool) -> Value {
    let prompt = (prompt_bytes as u64 / 4).max(1);
    let thoughts = if thinking { 3 } else { 0 };
    json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": 4,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt + 4 + thoughts
    })
}

fn parts(label: &str, plan: &Plan, chunks: usize) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    if let Some(t) = &plan.thinking {
        out.push(vec![
            json!({"text": t, "thought": true, "thoughtSignature": gemini_signature(label)}),
        ]);
    }
    if let Some(t) = &plan.text {
        for p in super::reply::pieces(t, chunks) {
            out.push(vec![json!({"text": p})]);
        }
    }
    if !plan.calls.is_empty() {
        // function calls come whole, in one chunk; the first is signed
        let calls = plan
            .calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| {
                let mut p = json!({"functionCall": {"name": name, "args": args}});
                if i == 0 {
                    p["thoughtSignature"] = json!(gemini_signature(label));
                }
                p
            })
            .collect();
        out.push(calls);
    }
    out
}

/// A whole response.
pub fn whole(label: &str, model: &str, plan: &Plan, prompt_bytes: usize) -> Value {
    let all: Vec<Value> = parts(label, plan, 1).into_iter().flatten().collect();
    json!({
        "candidates": [{"content": {"role": "model", "parts": all}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": usage(prompt_bytes, plan.thinking.is_some()),
        "modelVersion": model,
        "responseId": "mockresp"
    })
}

/// The chunks of a streamed response, as `data:` payloads.
pub fn stream(
    label: &str,
    model: &str,
    plan: &Plan,
    prompt_bytes: usize,
    chunks: usize,
) -> Vec<Value> {
    let groups = parts(label, plan, chunks);
    let n = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let mut c = json!({
                "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
                "modelVersion": model,
                "responseId": "mockresp"
            });
            if i + 1 == n {
                c["candidates"][0]["finishReason"] = json!("STOP");
                c["usageMetadata"] = usage(prompt_bytes, plan.thinking.is_some());
            }
            c
        })
        .collect()
}

/// An error body; a 429 carries `RetryInfo` (and a per-day `QuotaFailure`
/// when `daily`).
pub fn error(status: u16, retry_after: Option<&str>, daily: bool) -> Value {
    let state = match status {
        429 => "RESOURCE_EXHAUSTED",
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut details = Vec::new();
    if status == 429 {
        if daily {
            details.push(
                json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}),
            );
        }
        if let Some(r) = retry_after {
            details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{r}s")}));
        }
    }
    json!({"error": {"code": status, "message": format!("{state} (mock)"), "status": state, "details": details}})
}

/// A 400 for a request the mock's checks refused.
pub fn invalid(message: &str) -> Value {
    json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})
}
