//! Gemini generateContent ↔ the internal form: requests and whole responses.

use serde_json::{Map, Value, json};

use crate::protocol::ir::{
    self, Finish, Media, Part, Reasoning, Request, ResponseFormat, Role, Source, Text, Thinking,
    Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use crate::protocol::{Protocol, TranslateError, schema, signature};

/// The value Gemini accepts in place of a thought signature on a function
/// call that came from another provider's history.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Reads a field by its camelCase name or its snake_case proto name.
fn field<'a>(v: &'a Value, camel: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake(camel).as_str()))
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn as_str<'a>(v: &'a Value, camel: &str) -> Option<&'a str> {
    field(v, camel).and_then(Value::as_str)
}

/// Decodes a generateContent request from a client; the model comes from the URL.
pub fn decode_request(body: &[u8], model: &str, stream: bool) -> Result<Request, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    if !v.is_object() {
        return Err(TranslateError::Bad(
            "the request body must be a JSON object".into(),
        ));
    }
    let mut req = Request {
        model: model.to_owned(),
        stream,
        ..Request::default()
    };
    if let Some(sys) = field(&v, "systemInstruction") {
        for p in field(sys, "parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                req.system.push(Text::plain(t));
            }
        }
    }
    // Gemini matches function responses to calls by name and order; ids are
    // made here when the client sent none, so the other protocols can pair them
    let mut pending: Vec<(String, String)> = Vec::new();
    for (turn, content) in field(&v, "contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let role = match content.get("role").and_then(Value::as_str) {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let mut parts = Vec::new();
        let mut calls = 0;
        for p in content
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            decode_part(p, role, turn, &mut calls, &mut pending, &mut parts)?;
        }
        req.push(role, parts);
    }
    for t in field(&v, "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match field(t, "functionDeclarations").and_then(Value::as_array) {
            Some(decls) => {
                for d in decls {
                    req.tools.push(Tool {
                        name: as_str(d, "name").unwrap_or_default().to_owned(),
                        description: as_str(d, "description").map(str::to_owned),
                        parameters: field(d, "parametersJsonSchema")
                            .cloned()
                            .or_else(|| field(d, "parameters").map(schema::from_gemini))
                            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                        strict: None,
                        cache: None,
                    });
                }
            }
            None => {
                let name = t
                    .as_object()
                    .and_then(|o| o.keys().next())
                    .cloned()
                    .unwrap_or_default();
                return Err(TranslateError::Bad(format!(
                    "Gemini built-in tool `{name}` runs only on Gemini and cannot be translated"
                )));
            }
        }
    }
    if let Some(fc) = field(&v, "toolConfig").and_then(|t| field(t, "functionCallingConfig")) {
        let allowed: Vec<&str> = field(fc, "allowedFunctionNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        req.tool_choice = match as_str(fc, "mode") {
            Some("NONE") => Some(ToolChoice::None),
            Some("ANY") if allowed.len() == 1 => Some(ToolChoice::Named(allowed[0].to_owned())),
            Some("ANY") => Some(ToolChoice::Required),
            _ => Some(ToolChoice::Auto),
        };
    }
    if let Some(g) = field(&v, "generationConfig") {
        let f = |k: &str| field(g, k).and_then(Value::as_f64);
        let u = |k: &str| field(g, k).and_then(Value::as_u64);
        req.temperature = f("temperature");
        req.top_p = f("topP");
        req.top_k = u("topK");
        req.max_tokens = u("maxOutputTokens");
        req.seed = field(g, "seed").and_then(Value::as_i64);
        req.presence_penalty = f("presencePenalty");
        req.frequency_penalty = f("frequencyPenalty");
        req.n = u("candidateCount").map(|n| n as u32);
        req.stop = field(g, "stopSequences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if as_str(g, "responseMimeType") == Some("application/json") {
            req.response_format = Some(
                match field(g, "responseJsonSchema").or_else(|| field(g, "responseSchema")) {
                    Some(s) => ResponseFormat::JsonSchema {
                        name: "response".into(),
                        schema: schema::from_gemini(s),
                    },
                    None => ResponseFormat::JsonObject,
                },
            );
        }
        if let Some(t) = field(g, "thinkingConfig") {
            let budget = field(t, "thinkingBudget").and_then(Value::as_i64);
            req.reasoning = Some(Reasoning {
                budget: budget
                    .and_then(|b| u64::try_from(b).ok())
                    .filter(|b| *b > 0),
                include_thoughts: field(t, "includeThoughts").and_then(Value::as_bool)
                    == Some(true),
                disabled: budget == Some(0),
                ..Reasoning::default()
            });
        }
    }
    Ok(req)
}

fn decode_part(
    p: &Value,
    role: Role,
    turn: usize,
    calls: &mut usize,
    pending: &mut Vec<(String, String)>,
    parts: &mut Vec<Part>,
) -> Result<(), TranslateError> {
    let sig = as_str(p, "thoughtSignature")
        .filter(|s| !s.is_empty() && *s != SKIP_SIGNATURE)
        .map(|s| signature::from_client(s, Protocol::Gemini));
    if let Some(call) = field(p, "functionCall") {
        let name = as_str(call, "name").unwrap_or_default().to_owned();
        let id = as_str(call, "id")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("call_{turn}_{calls}"));
        *calls += 1;
        let (id, id_sig) = signature::split_id(&id);
        pending.push((name.clone(), id.clone()));
        parts.push(Part::ToolCall(ToolCall {
            id,
            name,
            arguments: call
                .get("args")
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into()),
            signature: sig.or(id_sig),
        }));
    } else if let Some(resp) = field(p, "functionResponse") {
        let name = as_str(resp, "name").unwrap_or_default().to_owned();
        let id = match as_str(resp, "id") {
            Some(id) => {
                let id = signature::split_id(id).0;
                pending.retain(|(_, pid)| *pid != id);
                id
            }
            None => match pending.iter().position(|(n, _)| *n == name) {
                Some(at) => pending.remove(at).1,
                None => {
                    return Err(TranslateError::Bad(format!(
                        "a functionResponse for `{name}` answers no earlier functionCall"
                    )));
                }
            },
        };
        let response = resp.get("response").cloned().unwrap_or(Value::Null);
        let text = match response.get("result").or_else(|| response.get("output")) {
            Some(Value::String(s)) if response.as_object().is_some_and(|o| o.len() == 1) => {
                s.clone()
            }
            _ => response.to_string(),
        };
        parts.push(Part::ToolResult(ToolResult {
            id,
            name: Some(name),
            is_error: response.get("error").is_some()
                && response.as_object().is_some_and(|o| o.len() == 1),
            content: vec![Part::Text(Text::plain(text))],
            cache: None,
        }));
    } else if let Some(text) = p.get("text").and_then(Value::as_str) {
        if field(p, "thought").and_then(Value::as_bool) == Some(true) {
            parts.push(Part::Thinking(Thinking {
                text: text.to_owned(),
                signature: sig,
                redacted: false,
            }));
        } else {
            if sig.is_some() && role == Role::Assistant {
                parts.push(Part::Thinking(Thinking {
                    text: String::new(),
                    signature: sig,
                    redacted: false,
                }));
            }
            parts.push(Part::Text(Text::plain(text)));
        }
    } else if let Some(d) = field(p, "inlineData") {
        let data = as_str(d, "data").unwrap_or_default();
        ir::check_base64(data)?;
        let media_type = as_str(d, "mimeType")
            .unwrap_or("application/octet-stream")
            .to_owned();
        let media = Media {
            source: Source::Base64 {
                data: data.to_owned(),
                media_type: media_type.clone(),
            },
            cache: None,
        };
        parts.push(if media_type.starts_with("image/") {
            Part::Image(media)
        } else {
            Part::Document(media)
        });
    } else if let Some(f) = field(p, "fileData") {
        let media = Media {
            source: Source::File {
                media_type: as_str(f, "mimeType").map(str::to_owned),
                uri: as_str(f, "fileUri").unwrap_or_default().to_owned(),
            },
            cache: None,
        };
        parts.push(Part::Image(media));
    } else if sig.is_some() && role == Role::Assistant {
        parts.push(Part::Thinking(Thinking {
            text: String::new(),
            signature: sig,
            redacted: false,
        }));
    }
    Ok(())
}

/// Encodes a request for a Gemini account (the model goes in the URL).
pub fn encode_request(req: &Request) -> Result<Value, TranslateError> {
    req.check_single_choice(Protocol::Gemini)?;
    let mut contents: Vec<Value> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        let parts = encode_parts(req, m.role, &m.parts)?;
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["parts"].as_array_mut() {
                    a.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !req.system.is_empty() {
        let parts: Vec<Value> = req.system.iter().map(|t| json!({"text": t.text})).collect();
        out.insert("systemInstruction".into(), json!({"parts": parts}));
    }
    if !req.tools.is_empty() {
        let mut decls = Vec::new();
        for t in &req.tools {
            let mut d = json!({"name": t.name, "parameters": schema::for_gemini(&t.parameters)?});
            if let Some(desc) = &t.description {
                d["description"] = json!(desc);
            }
            decls.push(d);
        }
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    if let Some(choice) = &req.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Named(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
        };
        out.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let mut g = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.into(), v);
        }
    };
    put("temperature", req.temperature.map(|t| json!(t)));
    put("topP", req.top_p.map(|t| json!(t)));
    put("topK", req.top_k.map(|t| json!(t)));
    put("maxOutputTokens", req.max_tokens.map(|t| json!(t)));
    put("seed", req.seed.map(|t| json!(t)));
    put("presencePenalty", req.presence_penalty.map(|t| json!(t)));
    put("frequencyPenalty", req.frequency_penalty.map(|t| json!(t)));
    if !req.stop.is_empty() {
        put(
            "stopSequences",
            Some(json!(req.stop.iter().take(5).collect::<Vec<_>>())),
        );
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            put("responseMimeType", Some(json!("application/json")))
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            put("responseMimeType", Some(json!("application/json")));
            put("responseSchema", Some(schema::for_gemini(schema)?));
        }
        None => {}
    }
    if let Some(r) = &req.reasoning {
        let config = if r.disabled {
            json!({"thinkingBudget": 0})
        } else {
            let mut c = json!({"includeThoughts": r.include_thoughts});
            if let Some(b) = r.budget_tokens() {
                c["thinkingBudget"] = json!(b);
            }
            c
        };
        put("thinkingConfig", Some(config));
    }
    if !g.is_empty() {
        out.insert("generationConfig".into(), Value::Object(g));
    }
    Ok(Value::Object(out))
}

fn encode_media(m: &Media) -> Result<Value, TranslateError> {
    match &m.source {
        Source::Base64 { media_type, data } => {
            Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        Source::File { media_type, uri } => {
            let mut f = json!({"fileUri": uri});
            if let Some(t) = media_type {
                f["mimeType"] = json!(t);
            }
            Ok(json!({"fileData": f}))
        }
        Source::Url(_) => Err(TranslateError::unsupported(
            "image or document URLs (the gateway does not fetch them; send the data inline as base64)",
            Protocol::Gemini,
        )),
    }
}

fn encode_parts(req: &Request, role: Role, parts: &[Part]) -> Result<Vec<Value>, TranslateError> {
    let mut out: Vec<Value> = Vec::new();
    let mut pending_sig: Option<String> = None;
    let mut first_call = true;
    for p in parts {
        match p {
            Part::Text(t) if t.text.is_empty() => {}
            Part::Text(t) => {
                let mut v = json!({"text": t.text});
                if let Some(s) = pending_sig.take() {
                    v["thoughtSignature"] = json!(s);
                }
                out.push(v);
            }
            Part::Image(m) | Part::Document(m) => out.push(encode_media(m)?),
            Part::ToolCall(c) if role == Role::Assistant => {
                let own = c
                    .signature
                    .as_ref()
                    .filter(|s| s.origin == Protocol::Gemini)
                    .map(|s| s.value.clone())
                    .or_else(|| pending_sig.take());
                let sig = match own {
                    Some(s) => Some(s),
                    // Gemini 3 requires a signature on a turn's first call;
                    // calls from another provider's history have none
                    None if first_call => Some(SKIP_SIGNATURE.to_owned()),
                    None => None,
                };
                first_call = false;
                let mut v = json!({"functionCall": {"name": c.name, "args": c.arguments_object()}});
                if let Some(s) = sig {
                    v["thoughtSignature"] = json!(s);
                }
                out.push(v);
            }
            Part::ToolCall(_) => {}
            Part::ToolResult(r) => {
                let name = match &r.name {
                    Some(n) => n.clone(),
                    None => req
                        .tool_name(&r.id)
                        .ok_or_else(|| {
                            TranslateError::Bad(format!(
                                "a tool result answers `{}`, which no earlier tool call has as its id",
                                r.id
                            ))
                        })?
                        .to_owned(),
                };
                let text = r.text();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) if !r.is_error => v,
                    _ if r.is_error => json!({"error": text}),
                    _ => json!({"result": text}),
                };
                out.push(json!({"functionResponse": {"name": name, "response": response}}));
                for c in &r.content {
                    if let Part::Image(m) = c {
                        out.push(encode_media(m)?);
                    }
                }
            }
            Part::Thinking(t) => {
                let own = t
                    .signature
                    .as_ref()
                    .filter(|s| s.origin == Protocol::Gemini)
                    .map(|s| s.value.clone());
                match own {
                    Some(sig) if !t.text.is_empty() => {
                        out.push(json!({"text": t.text, "thought": true, "thoughtSignature": sig}));
                    }
                    Some(sig) => pending_sig = Some(sig),
                    // thinking of other providers is dropped
                    None => {}
                }
            }
        }
    }
    if let Some(sig) = pending_sig
        && let Some(last) = out.last_mut()
        && last.get("thoughtSignature").is_none()
    {
        last["thoughtSignature"] = json!(sig);
    }
    // function responses lead a user turn, in call order
    if role == Role::User {
        out.sort_by_key(|p| p.get("functionResponse").is_none());
    }
    Ok(out)
}

/// Decodes a whole generateContent response from an upstream. Function
/// calls without ids get ids unique within this response.
pub fn decode_response(body: &[u8]) -> Result<ir::Response, serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    Ok(decode_chunk(&v, &mut 0).0)
}

/// Decodes one response (or stream chunk); `calls` counts function calls
/// seen so far, for generated ids.
pub fn decode_chunk(v: &Value, calls: &mut usize) -> (ir::Response, bool) {
    let id = as_str(v, "responseId").unwrap_or_default().to_owned();
    let candidate = field(v, "candidates").and_then(|c| c.get(0));
    let mut content = Vec::new();
    let mut saw_call = false;
    for p in candidate
        .and_then(|c| c.get("content"))
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let sig =
            as_str(p, "thoughtSignature").map(|s| signature::from_client(s, Protocol::Gemini));
        if let Some(call) = field(p, "functionCall") {
            saw_call = true;
            let call_id = as_str(call, "id")
                .map(str::to_owned)
                .unwrap_or_else(|| generated_call_id(&id, *calls));
            *calls += 1;
            content.push(Part::ToolCall(ToolCall {
                id: call_id,
                name: as_str(call, "name").unwrap_or_default().to_owned(),
                arguments: call
                    .get("args")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
                signature: sig,
            }));
        } else if let Some(text) = p.get("text").and_then(Value::as_str) {
            if field(p, "thought").and_then(Value::as_bool) == Some(true) {
                content.push(Part::Thinking(Thinking {
                    text: text.to_owned(),
                    signature: sig,
                    redacted: false,
                }));
            } else {
                if sig.is_some() {
                    content.push(Part::Thinking(Thinking {
                        text: String::new(),
                        signature: sig,
                        redacted: false,
                    }));
                }
                if !text.is_empty() {
                    content.push(Part::Text(Text::plain(text)));
                }
            }
        }
    }
    let reason = candidate.and_then(|c| as_str(c, "finishReason"));
    let blocked = field(v, "promptFeedback")
        .and_then(|f| as_str(f, "blockReason"))
        .is_some();
    let finish = match reason {
        _ if blocked => Finish::Filtered,
        None | Some("STOP") if saw_call => Finish::ToolUse,
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED") => Finish::Stop,
        Some("MAX_TOKENS") => Finish::Length,
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => Finish::Filtered,
        Some(other) => Finish::Other(other.to_owned()),
    };
    let has_finish = reason.is_some() || blocked;
    (
        ir::Response {
            id,
            model: as_str(v, "modelVersion").unwrap_or_default().to_owned(),
            content,
            finish,
            usage: field(v, "usageMetadata")
                .map(decode_usage)
                .unwrap_or_default(),
        },
        has_finish,
    )
}

/// An id for a Gemini function call that came without one: stable within
/// the response.
pub fn generated_call_id(response_id: &str, n: usize) -> String {
    let base: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect();
    format!("call_{base}_{n}")
}

/// Reads `usageMetadata` (output there excludes thoughts).
pub fn decode_usage(u: &Value) -> Usage {
    let n = |k: &str| field(u, k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    Usage {
        input: n("promptTokenCount"),
        cached_input: n("cachedContentTokenCount"),
        cache_write: 0,
        output: n("candidatesTokenCount") + thoughts,
        reasoning: thoughts,
    }
}

/// A `usageMetadata` object.
pub fn encode_usage(u: &Usage) -> Value {
    let mut v = json!({
        "promptTokenCount": u.input,
        "candidatesTokenCount": u.output.saturating_sub(u.reasoning),
        "totalTokenCount": u.total()
    });
    if u.cached_input > 0 {
        v["cachedContentTokenCount"] = json!(u.cached_input);
    }
    if u.reasoning > 0 {
        v["thoughtsTokenCount"] = json!(u.reasoning);
    }
    v
}

/// `finishReason` for a finish (a tool call also ends with STOP).
pub fn encode_finish(f: &Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::StopSequence(_) | Finish::ToolUse | Finish::Other(_) => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::Filtered => "SAFETY",
    }
}

/// A part as a Gemini client sees it.
pub fn encode_part_for_client(p: &Part) -> Option<Value> {
    let sig = |s: &Option<ir::Signature>| {
        s.as_ref()
            .map(|s| signature::for_client(s, Protocol::Gemini))
    };
    Some(match p {
        Part::Text(t) => json!({"text": t.text}),
        Part::Thinking(t) => {
            let mut v = json!({"text": t.text, "thought": true});
            if let Some(s) = sig(&t.signature) {
                v["thoughtSignature"] = json!(s);
            }
            v
        }
        Part::ToolCall(c) => {
            let mut v =
                json!({"functionCall": {"id": c.id, "name": c.name, "args": c.arguments_object()}});
            if let Some(s) = sig(&c.signature) {
                v["thoughtSignature"] = json!(s);
            }
            v
        }
        _ => return None,
    })
}

/// Encodes a whole generateContent response for a client.
pub fn encode_response(r: &ir::Response) -> Value {
    let parts: Vec<Value> = r
        .content
        .iter()
        .filter_map(encode_part_for_client)
        .collect();
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": encode_finish(&r.finish),
            "index": 0
        }],
        "usageMetadata": encode_usage(&r.usage),
        "modelVersion": r.model,
        "responseId": r.id
    })
}
