//! An issue-tracker integration for Morph (guest ABI v1, docs/abi.md),
//! written against the raw ABI with serde_json.

use serde_json::{Value, json};

#[link(wasm_import_module = "morph")]
unsafe extern "C" {
    fn host_call(req_ptr: i32, req_len: i32) -> i32;
    fn host_response(dst_ptr: i32, dst_len: i32) -> i32;
}

fn leak(bytes: Vec<u8>) -> i64 {
    let bytes = bytes.leak();
    ((bytes.as_ptr() as i64) << 32) | bytes.len() as i64
}

#[unsafe(no_mangle)]
pub extern "C" fn morph_abi_version() -> i32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn morph_alloc(size: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(size.max(1) as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as usize as i32
}

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
    leak(doc.to_string().into_bytes())
}

type Failure = (String, String);

/// One host call; an `err` envelope becomes a failure with the host's code.
fn call(op: &str, args: Value) -> Result<Value, Failure> {
    let request = json!({"op": op, "args": args}).to_string();
    let n = unsafe { host_call(request.as_ptr() as i32, request.len() as i32) };
    let mut response = vec![0u8; n as usize];
    unsafe { host_response(response.as_mut_ptr() as i32, n) };
    let mut envelope: Value = serde_json::from_slice(&response)
        .map_err(|e| ("bad_response".to_string(), e.to_string()))?;
    if let Some(err) = envelope.get("err") {
        let code = err["code"].as_str().unwrap_or("host_error").to_string();
        let message = err["message"].as_str().unwrap_or_default().to_string();
        return Err((code, format!("{op}: {message}")));
    }
    Ok(envelope["ok"].take())
}

fn create_issue(params: &Value, context: &Value) -> Result<Value, Failure> {
    let api = context["config"]["api_url"]
        .as_str()
        .ok_or(("no_api_url".to_string(), "config.api_url is not set".to_string()))?;
    let token = call("vault.get_secret", json!({"key": "token"}))?;
    let token = token
        .as_str()
        .ok_or(("no_token".to_string(), "the vault has no secret `token`".to_string()))?;
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
        return Err(("tracker_error".to_string(), format!("the tracker answered {status}")));
    }
    let created: Value = serde_json::from_str(response["body"].as_str().unwrap_or("{}"))
        .map_err(|e| ("tracker_error".to_string(), format!("unreadable answer: {e}")))?;
    let id = created["id"].clone();
    call("data.set", json!({"key": format!("issue/{id}"), "value": issue}))?;
    call("events.emit", json!({"name": "issue_created", "payload": {"id": id, "title": params["title"]}}))?;
    Ok(json!({"id": id, "url": format!("{}/issues/{id}", api.trim_end_matches('/'))}))
}

#[unsafe(no_mangle)]
pub extern "C" fn execute(a_ptr: i32, a_len: i32, p_ptr: i32, p_len: i32, c_ptr: i32, c_len: i32) -> i64 {
    let bytes = |ptr: i32, len: i32| unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) };
    let action = String::from_utf8_lossy(bytes(a_ptr, a_len)).into_owned();
    let params: Value = serde_json::from_slice(bytes(p_ptr, p_len)).unwrap_or(Value::Null);
    let context: Value = serde_json::from_slice(bytes(c_ptr, c_len)).unwrap_or(Value::Null);
    let result = match action.as_str() {
        "create_issue" => create_issue(&params, &context),
        "list_issues" => call("data.list", json!({"prefix": "issue/"})),
        other => Err(("unknown_action".to_string(), format!("no action {other}"))),
    };
    let envelope = match result {
        Ok(value) => json!({"ok": value}),
        Err((code, message)) => json!({"err": {"code": code, "message": message}}),
    };
    leak(envelope.to_string().into_bytes())
}
