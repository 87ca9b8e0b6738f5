//! The ExtensionManager end to end on a real engine: install with a grant,
//! list, execute by id, deliver events to listeners under the hop limit,
//! unload and uninstall.

use std::collections::BTreeMap;
use std::sync::Arc;

use morph_core::host::{DataStore, MemoryAuditSink, MemoryDataStore};
use morph_core::{
    BaseMorphRuntime, CapabilityHost, EngineRuntime, ErrorKind, ExecutionContext, ExtensionManager,
    HostPolicy, MAX_EVENT_HOPS, RuntimeKind,
};
use morph_runtime_wasmtime::WasmtimeOptions;
use serde_json::json;

fn fixture(name: &str) -> std::path::PathBuf {
    morph_conformance::Suite::bundled()
        .expect("suite")
        .root
        .join("fixtures")
        .join(name)
}

struct Setup {
    manager: ExtensionManager,
    data: Arc<MemoryDataStore>,
    audit: Arc<MemoryAuditSink>,
    _root: tempfile::TempDir,
}

fn setup() -> Setup {
    let root = tempfile::tempdir().expect("temp dir");
    let runtime: Arc<dyn BaseMorphRuntime> = Arc::new(
        EngineRuntime::new(
            morph_runtime_wasmtime::backend(WasmtimeOptions::default()).expect("backend"),
        )
        .expect("runtime"),
    );
    let data = Arc::new(MemoryDataStore::new());
    let audit = Arc::new(MemoryAuditSink::default());
    let host = CapabilityHost::builder()
        .data(data.clone())
        .audit(audit.clone());
    let manager = ExtensionManager::new(
        root.path(),
        host,
        BTreeMap::from([(RuntimeKind::Wasm, runtime)]),
        None,
    )
    .expect("manager");
    Setup {
        manager,
        data,
        audit,
        _root: root,
    }
}

#[tokio::test]
async fn installs_lists_executes_and_delivers_events_to_listeners() {
    let s = setup();
    s.manager
        .install(&fixture("kitchen"), &HostPolicy::allow_requested())
        .expect("install kitchen");
    s.manager
        .install(&fixture("listener"), &HostPolicy::allow_requested())
        .expect("install listener");
    let ids: Vec<String> = s
        .manager
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.extension_id)
        .collect();
    assert_eq!(ids, ["conformance.kitchen", "conformance.listener"]);

    let run = s
        .manager
        .execute(
            "conformance.kitchen",
            "call",
            json!({"op": "events.emit", "args": {"name": "done", "payload": {"issue": 7}}}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    assert_eq!(run.result.expect("ok"), json!({"ok": null}));

    let last = s
        .data
        .get("conformance.listener", "last")
        .expect("data")
        .expect("a delivery");
    assert_eq!(
        last["event"], "conformance.listener/again",
        "the loop ran through its own event"
    );
    let deliveries = s
        .audit
        .records()
        .iter()
        .filter(|r| r.op == "execute" && r.extension_id == "conformance.listener")
        .count();
    assert_eq!(
        deliveries as u32, MAX_EVENT_HOPS,
        "the hop limit ends the loop"
    );
    assert!(s.manager.list().expect("list").iter().all(|i| i.loaded));
}

#[tokio::test]
async fn a_failing_listener_does_not_stop_the_others() {
    let s = setup();
    for name in ["kitchen", "broken_listener", "listener"] {
        s.manager
            .install(&fixture(name), &HostPolicy::allow_requested())
            .expect("install");
    }
    let run = s
        .manager
        .execute(
            "conformance.kitchen",
            "call",
            json!({"op": "events.emit", "args": {"name": "done", "payload": {"n": 1}}}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    assert_eq!(
        run.result.expect("the emitter's own result"),
        json!({"ok": null})
    );
    let records = s.audit.records();
    let broken: Vec<_> = records
        .iter()
        .filter(|r| r.op == "execute" && r.extension_id == "conformance.broken-listener")
        .collect();
    assert_eq!(broken.len(), 1, "delivered once, first (sorted by id)");
    assert_eq!(broken[0].outcome, "trap");
    assert!(
        s.data
            .get("conformance.listener", "last")
            .expect("data")
            .is_some(),
        "the next listener still got the event"
    );
}

#[tokio::test]
async fn without_event_listen_granted_nothing_is_delivered() {
    let s = setup();
    s.manager
        .install(&fixture("kitchen"), &HostPolicy::allow_requested())
        .expect("install kitchen");
    let mut policy = HostPolicy::allow_requested();
    policy.granted = [morph_core::Permission::DataWrite].into_iter().collect();
    s.manager
        .install(&fixture("listener"), &policy)
        .expect("install listener");
    s.manager
        .execute(
            "conformance.kitchen",
            "call",
            json!({"op": "events.emit", "args": {"name": "done", "payload": 1}}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    assert_eq!(
        s.data.get("conformance.listener", "last").expect("data"),
        None
    );
}

#[tokio::test]
async fn unknown_and_uninstalled_extensions_are_not_found() {
    let s = setup();
    let e = s
        .manager
        .execute("nobody", "x", json!({}), &ExecutionContext::default())
        .await
        .expect_err("not installed");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    s.manager
        .install(&fixture("minimal"), &HostPolicy::allow_requested())
        .expect("install");
    let run = s
        .manager
        .execute(
            "conformance.minimal",
            "run",
            json!({}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    assert_eq!(run.result.expect("ok"), json!("ran"));
    assert!(s.manager.unload("conformance.minimal"));
    s.manager
        .uninstall("conformance.minimal")
        .expect("uninstall");
    assert!(s.manager.list().expect("list").is_empty());
    let Err(e) = s.manager.load("../escape").await else {
        panic!("a bad id must not load");
    };
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_fan_out_of_events_is_bounded_per_execution() {
    let s = setup();
    for name in ["kitchen", "fanout"] {
        s.manager
            .install(&fixture(name), &HostPolicy::allow_requested())
            .expect("install");
    }
    let started = std::time::Instant::now();
    let run = s
        .manager
        .execute(
            "conformance.kitchen",
            "call",
            json!({"op": "events.emit", "args": {"name": "done", "payload": {}}}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    assert_eq!(run.result.expect("ok"), json!({"ok": null}));
    let records = s.audit.records();
    let deliveries = records
        .iter()
        .filter(|r| r.extension_id == "conformance.fanout" && r.op == "execute")
        .count();
    assert_eq!(
        deliveries,
        morph_core::MAX_DELIVERIES_PER_EXECUTION as usize
    );
    let refused = records
        .iter()
        .find(|r| r.op == "events.deliver")
        .expect("the refusal is audited");
    assert_eq!(refused.outcome, "quota_exceeded");
    assert!(!refused.allowed);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// With another caller's event waiting in the queue (its chain `other`,
/// its request id `other`), how many listener executions an `echo` under
/// `ctx` runs.
async fn deliveries_of_another_callers_event(ctx: ExecutionContext) -> usize {
    let s = setup();
    for name in ["kitchen", "listener"] {
        s.manager
            .install(&fixture(name), &HostPolicy::allow_requested())
            .expect("install");
    }
    s.manager
        .host()
        .publish_events(vec![morph_core::host::Event {
            source: "conformance.kitchen".into(),
            name: "conformance.kitchen/done".into(),
            payload: json!({"from": "another caller"}),
            request_id: "other".into(),
            hops: 0,
            origin: "other".into(),
        }]);
    s.manager
        .execute("conformance.kitchen", "echo", json!({"text": "mine"}), &ctx)
        .await
        .expect("execute");
    s.audit
        .records()
        .iter()
        .filter(|r| r.extension_id == "conformance.listener")
        .count()
}

#[tokio::test]
async fn an_execution_delivers_only_its_own_events() {
    let delivered = deliveries_of_another_callers_event(ExecutionContext::default()).await;
    assert_eq!(delivered, 0, "another caller's event was delivered");
}

/// A caller that picks the other caller's request id for its own
/// execution still gets none of that caller's events.
#[tokio::test]
async fn a_request_id_cannot_name_another_callers_event_chain() {
    let delivered = deliveries_of_another_callers_event(ExecutionContext {
        request_id: Some("other".into()),
        ..ExecutionContext::default()
    })
    .await;
    assert_eq!(delivered, 0, "a chosen request id took another's events");
}

/// Five listeners that each run to their own 1 s limit: the chain of
/// deliveries of one execution shares one budget, the emitter's 300 ms.
#[tokio::test]
async fn a_delivery_chain_shares_one_time_budget() {
    let s = setup();
    let emitter = HostPolicy::allow_requested().ceilings(morph_core::ResourceLimits {
        max_execution_ms: 300,
        ..morph_core::ResourceLimits::default()
    });
    s.manager
        .install(&fixture("kitchen"), &emitter)
        .expect("install kitchen");
    let copies = tempfile::tempdir().expect("temp dir");
    let source = fixture("slow_listener");
    let manifest = std::fs::read_to_string(source.join("manifest.yaml")).expect("manifest");
    for n in 1..=5 {
        let dir = copies.path().join(format!("slow{n}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("manifest.yaml"),
            manifest.replace(
                "extension_id: conformance.slow_listener",
                &format!("extension_id: conformance.slow{n}"),
            ),
        )
        .expect("manifest");
        std::fs::copy(source.join("extension.wat"), dir.join("extension.wat")).expect("entry");
        s.manager
            .install(&dir, &HostPolicy::allow_requested())
            .expect("install listener");
        // Loaded up front: the budget is about running, not compiling.
        s.manager
            .load(&format!("conformance.slow{n}"))
            .await
            .expect("load");
    }
    s.manager.load("conformance.kitchen").await.expect("load");
    let started = std::time::Instant::now();
    let run = s
        .manager
        .execute(
            "conformance.kitchen",
            "call",
            json!({"op": "events.emit", "args": {"name": "done", "payload": {}}}),
            &ExecutionContext::default(),
        )
        .await
        .expect("execute");
    let took = started.elapsed();
    assert_eq!(run.result.expect("ok"), json!({"ok": null}));
    assert!(
        took < std::time::Duration::from_millis(2500),
        "five 1 s listeners ran {took:?} past a 300 ms emitter"
    );
    let records = s.audit.records();
    let refused = records
        .iter()
        .find(|r| r.op == "events.deliver")
        .expect("the undelivered rest is audited");
    assert_eq!(refused.outcome, "timeout", "{refused:?}");
    assert!(!refused.allowed);
}
