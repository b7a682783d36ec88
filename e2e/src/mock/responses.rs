//! The mock's OpenAI Responses wire format. Responses are "stored": a
//! `previous_response_id` that this account did not create is answered
//! with OpenAI's 404, so a continuation sent to the wrong account fails.

use serde_json::{Value, json};

use super::reply::{Plan, Turn};

/// Reads a request; the error is the 400 message.
pub fn turn(req: &Value) -> Result<Turn, String> {
    let items: Vec<Value> = match req.get("input") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(_)) => Vec::new(),
        _ => return Err("input is required".into()),
    };
    let tool_results = items
        .iter()
        .rev()
        .take_while(|i| i["type"] == "function_call_output")
        .map(|i| i["output"].as_str().unwrap_or_default().to_owned())
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
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["parameters"].clone(),
            )
        })
        .collect();
    Ok(Turn {
        tools,
        tool_results,
        thinking: false,
    })
}

fn items(id: &str, plan: &Plan) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(t) = &plan.text {
        out.push(json!({"id": format!("msg_{id}"), "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": t, "annotations": []}]}));
    }
    for (i, (name, args)) in plan.calls.iter().enumerate() {
        out.push(
            json!({"id": format!("fc_{id}_{i}"), "type": "function_call", "status": "completed",
            "call_id": format!("call_{id}_{i}"), "name": name, "arguments": args.to_string()}),
        );
    }
    out
}

/// A whole response with id `id`.
pub fn whole(id: &str, model: &str, plan: &Plan, prompt_bytes: usize) -> Value {
    let input = (prompt_bytes as u64 / 4).max(1);
    json!({
        "id": id, "object": "response", "created_at": 1_700_000_000, "status": "completed",
        "error": null, "incomplete_details": null, "model": model, "output": items(id, plan),
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input + 4}
    })
}

/// The events of a streamed response, with whether each carries content.
pub fn stream(
    id: &str,
    model: &str,
    plan: &Plan,
    prompt_bytes: usize,
    chunks: usize,
) -> Vec<(String, bool)> {
    let mut seq = 0;
    let mut ev = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        format!("event: {kind}\ndata: {data}\n\n")
    };
    let full = whole(id, model, plan, prompt_bytes);
    let mut start = full.clone();
    start["status"] = json!("in_progress");
    start["output"] = json!([]);
    start["usage"] = Value::Null;
    let mut out = vec![
        (
            ev("response.created", json!({"response": start.clone()})),
            false,
        ),
        (
            ev("response.in_progress", json!({"response": start})),
            false,
        ),
    ];
    for (index, item) in items(id, plan).into_iter().enumerate() {
        let mut open = item.clone();
        open["status"] = json!("in_progress");
        if item["type"] == "message" {
            open["content"] = json!([]);
            out.push((
                ev(
                    "response.output_item.added",
                    json!({"output_index": index, "item": open}),
                ),
                false,
            ));
            let text = item["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for piece in super::reply::pieces(&text, chunks) {
                out.push((
                    ev(
                        "response.output_text.delta",
                        json!({"item_id": item["id"], "output_index": index,
                    "content_index": 0, "delta": piece}),
                    ),
                    true,
                ));
            }
            out.push((
                ev(
                    "response.output_text.done",
                    json!({"item_id": item["id"], "output_index": index,
                "content_index": 0, "text": text}),
                ),
                true,
            ));
        } else {
            open["arguments"] = json!("");
            out.push((
                ev(
                    "response.output_item.added",
                    json!({"output_index": index, "item": open}),
                ),
                true,
            ));
            out.push((
                ev(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item["id"],
                "output_index": index, "delta": item["arguments"]}),
                ),
                true,
            ));
        }
        out.push((
            ev(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            ),
            true,
        ));
    }
    out.push((ev("response.completed", json!({"response": full})), true));
    out
}
