//! An issue-tracker integration for Morph (guest ABI v1, docs/abi.md),
//! written with `morph-sdk` and serde_json.

use morph_sdk::{Failure, call};
use serde_json::{Value, json};

#[unsafe(no_mangle)]
pub extern "C" fn describe() -> i64 {
    let doc = json!({
        "name": "Issue tracker",
        "version": "1.0.0",
        "actions": [
            {"name": "create_issue",
             "description": "Creates an issue; the API base URL comes from config.api_url.",
             "parameters": [
                 {"name": "title", "type": "string", "required": true},
                 {"name": "body", "type": "string", "required": false}]},
            {"name": "list_issues", "description": "The ids of the issues created so far.", "parameters": []}
        ],
        "events": ["issue_created"],
        "config_schema": {"type": "object", "properties": {"api_url": {"type": "string"}}}
    });
    morph_sdk::describe(&doc)
}

fn create_issue(params: &Value, context: &Value) -> Result<Value, Failure> {
    let api = context["config"]["api_url"]
        .as_str()
        .ok_or_else(|| Failure::new("no_api_url", "config.api_url is not set"))?;
    let token = call("vault.get_secret", json!({"key": "token"}))?;
    let token = token
        .as_str()
        .ok_or_else(|| Failure::new("no_token", "the vault has no secret `token`"))?;
    let issue = json!({"title": params["title"], "body": params["body"]});
    let response = call(
        "http.fetch",
        json!({
            "method": "POST",
            "url": format!("{}/issues", api.trim_end_matches('/')),
            "headers": [["authorization", format!("Bearer {token}")], ["content-type", "application/json"]],
            "body": issue.to_string(),
        }),
    )?;
    let status = response["status"].as_u64().unwrap_or(0);
    if status != 201 && status != 200 {
        return Err(Failure::new("tracker_error", format!("the tracker answered {status}")));
    }
    let created: Value = serde_json::from_str(response["body"].as_str().unwrap_or("{}"))
        .map_err(|e| Failure::new("tracker_error", format!("unreadable answer: {e}")))?;
    let id = created["id"].clone();
    call("data.set", json!({"key": format!("issue/{id}"), "value": issue}))?;
    call("events.emit", json!({"name": "issue_created", "payload": {"id": id, "title": params["title"]}}))?;
    Ok(json!({"id": id, "url": format!("{}/issues/{id}", api.trim_end_matches('/'))}))
}

fn run(action: &str, params: Value, context: Value) -> Result<Value, Failure> {
    match action {
        "create_issue" => create_issue(&params, &context),
        "list_issues" => call("data.list", json!({"prefix": "issue/"})),
        other => Err(Failure::new("unknown_action", format!("no action {other}"))),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn execute(a_ptr: i32, a_len: i32, p_ptr: i32, p_len: i32, c_ptr: i32, c_len: i32) -> i64 {
    // SAFETY: the host passes ranges it placed in this module's memory.
    unsafe { morph_sdk::execute(a_ptr, a_len, p_ptr, p_len, c_ptr, c_len, run) }
}
