//! Requests translated between every pair: ordering and alternation rules,
//! tool names for Gemini, signatures kept only for their own provider.

use serde_json::{Value, json};

use super::openai::chat::Dialect;
use super::{Protocol, anthropic, gemini, openai, signature};

fn openai_history() -> Vec<u8> {
    json!({
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "one"},
            {"role": "tool", "tool_call_id": "call_2", "content": "two"},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "a", "parameters": {"type": "object", "additionalProperties": false, "properties": {"x": {"type": "integer"}}}}}],
        "tool_choice": "required",
        "stop": ["a", "b", "c", "d", "e", "f"],
        "max_completion_tokens": 100
    })
    .to_string()
    .into_bytes()
}

#[test]
fn openai_history_to_anthropic_merges_tool_results_first_into_one_user_turn() {
    let req = openai::chat::decode_request(&openai_history()).unwrap();
    let out = anthropic::messages::encode_request(&req).unwrap();
    assert_eq!(out["system"][0]["text"], "Be brief.");
    let roles: Vec<&str> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    let last = &out["messages"][2]["content"];
    assert_eq!(last[0]["type"], "tool_result");
    assert_eq!(last[0]["tool_use_id"], "call_1");
    assert_eq!(last[1]["tool_use_id"], "call_2");
    assert_eq!(last[2]["text"], "thanks");
    assert_eq!(out["messages"][0]["content"][1]["source"]["type"], "base64");
    assert_eq!(out["messages"][1]["content"][0]["input"], json!({"x": 1}));
    assert_eq!(out["tool_choice"], json!({"type": "any"}));
    assert_eq!(out["max_tokens"], 100);
}

#[test]
fn openai_history_to_gemini_names_function_responses_and_cleans_schemas() {
    let req = openai::chat::decode_request(&openai_history()).unwrap();
    let out = gemini::generate::encode_request(&req).unwrap();
    let contents = out["contents"].as_array().unwrap();
    assert_eq!(
        contents
            .iter()
            .map(|c| c["role"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["user", "model", "user"]
    );
    let model_parts = contents[1]["parts"].as_array().unwrap();
    // the first call of a turn without a Gemini signature gets the skip value
    assert_eq!(
        model_parts[0]["thoughtSignature"],
        gemini::generate::SKIP_SIGNATURE
    );
    assert!(model_parts[1].get("thoughtSignature").is_none());
    let answers = contents[2]["parts"].as_array().unwrap();
    assert_eq!(
        answers[0]["functionResponse"],
        json!({"name": "a", "response": {"result": "one"}})
    );
    assert_eq!(answers[1]["functionResponse"]["name"], "b");
    assert_eq!(answers[2]["text"], "thanks");
    let params = &out["tools"][0]["functionDeclarations"][0]["parameters"];
    assert!(params.get("additionalProperties").is_none(), "{params}");
    assert_eq!(
        out["generationConfig"]["stopSequences"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        out["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
}

#[test]
fn a_tool_result_for_an_unknown_call_is_a_clear_error_for_gemini() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "nope", "content": "x"}
    ]});
    let req = openai::chat::decode_request(body.to_string().as_bytes()).unwrap();
    let err = gemini::generate::encode_request(&req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nope`"), "{err}");
}

#[test]
fn foreign_thinking_is_dropped_and_own_thinking_kept() {
    let gemini_sig = signature::for_client(
        &super::ir::Signature {
            origin: Protocol::Gemini,
            value: "R1NJRw==".into(),
        },
        Protocol::Anthropic,
    );
    let body = json!({"model": "claude", "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "from gemini", "signature": gemini_sig},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}
    ]});
    let req = anthropic::messages::decode_request(body.to_string().as_bytes()).unwrap();
    // to Gemini: the thought goes back with Gemini's own signature
    let g = gemini::generate::encode_request(&req).unwrap();
    let parts = &g["contents"][1]["parts"];
    assert_eq!(
        parts[0],
        json!({"text": "from gemini", "thought": true, "thoughtSignature": "R1NJRw=="})
    );
    // to Anthropic (translated or cleaned): the foreign thinking is dropped
    // and thinking is off, since the tool loop cannot start with Anthropic's own
    let a = anthropic::messages::encode_request(&req).unwrap();
    assert!(a.get("thinking").is_none(), "{a}");
    assert_eq!(a["messages"][1]["content"][0]["type"], "tool_use");
    let cleaned: Value = serde_json::from_slice(
        &anthropic::clean_foreign_signatures(body.to_string().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(cleaned.get("thinking").is_none());
    assert_eq!(
        cleaned["messages"][1]["content"].as_array().unwrap().len(),
        1
    );
    // to OpenAI: thinking has no place in chat history and is left out
    let o = openai::chat::encode_request(&req, Dialect::Compatible).unwrap();
    assert_eq!(o["messages"][1]["tool_calls"][0]["id"], "t1");
    assert!(!o.to_string().contains("from gemini"));
}

#[test]
fn unexpressible_requests_name_the_feature_and_provider() {
    let body = json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    let req = openai::chat::decode_request(body.to_string().as_bytes()).unwrap();
    let err = anthropic::messages::encode_request(&req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("n > 1") && err.contains("anthropic"), "{err}");
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let req = openai::chat::decode_request(body.to_string().as_bytes()).unwrap();
    let err = gemini::generate::encode_request(&req)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gemini") && err.contains("URL"), "{err}");
    // Anthropic takes URL images directly
    assert_eq!(
        anthropic::messages::encode_request(&req).unwrap()["messages"][0]["content"][0]["source"]["type"],
        "url"
    );
    let bad = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]});
    assert!(
        openai::chat::decode_request(bad.to_string().as_bytes())
            .unwrap_err()
            .to_string()
            .contains("base64")
    );
}

#[test]
fn whole_responses_convert_usage_by_each_protocols_rules() {
    let anthropic_body = json!({"id": "msg_1", "model": "c", "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "max_tokens", "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2, "output_tokens": 3}});
    let r = anthropic::messages::decode_response(anthropic_body.to_string().as_bytes()).unwrap();
    let o = openai::chat::encode_response(&r);
    assert_eq!(o["usage"]["prompt_tokens"], 16);
    assert_eq!(o["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(o["choices"][0]["finish_reason"], "length");
    let g = gemini::generate::encode_response(&r);
    assert_eq!(g["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(g["usageMetadata"]["promptTokenCount"], 16);
    let back = anthropic::messages::encode_response(&r);
    assert_eq!(back["usage"]["input_tokens"], 10);
}
