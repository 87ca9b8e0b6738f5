//! What `EngineRuntime` audits whatever the engine does: an execution the
//! watchdog abandoned or whose engine panicked still has its record, and a
//! best-effort backend's missing limits are named in every record.

use std::sync::Arc;
use std::time::Duration;

use morph_core::host::MemoryAuditSink;
use morph_core::{
    Backend, BaseMorphRuntime, CapabilityHost, EffectivePolicy, Enforcement, EngineLimit,
    EngineRuntime, EntryCode, ErrorKind, ExecutionContext, ExtensionArtifact, ExtensionManifest,
    GuestCall, GuestRun, HostPolicy, LimitEnforcement, PreparedExtension, Result, RuntimeInfo,
    RuntimeKind, Session,
};
use serde_json::json;

/// What the fake engine does on `execute`.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Sleeps past every deadline.
    IgnoreDeadline,
    /// Panics (an engine bug).
    Panic,
    /// Answers `{"ok": 1}`.
    Answer,
}

struct Fake {
    behaviour: Behaviour,
    memory: Enforcement,
}

struct FakeCode(Behaviour);

const DESCRIBE: &str = r#"{"name":"T","version":"1.0.0","actions":[{"name":"run","parameters":[]}],"events":[],"config_schema":{}}"#;

impl Backend for Fake {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo::script(
            "fake",
            "fake",
            "0",
            RuntimeKind::Js,
            [
                (EngineLimit::ExecutionTime, Enforcement::Native),
                (EngineLimit::Memory, self.memory),
                (EngineLimit::Stack, Enforcement::Native),
                (EngineLimit::Fuel, Enforcement::Unsupported),
            ],
        )
    }

    fn prepare(&self, _: &EntryCode, _: &EffectivePolicy) -> Result<Arc<dyn PreparedExtension>> {
        Ok(Arc::new(FakeCode(self.behaviour)))
    }
}

impl PreparedExtension for FakeCode {
    fn run(&self, session: Session, call: GuestCall<'_>) -> GuestRun {
        let result = match (call, self.0) {
            (GuestCall::Describe, _) => Ok(DESCRIBE.as_bytes().to_vec()),
            (_, Behaviour::IgnoreDeadline) => {
                std::thread::sleep(Duration::from_secs(3));
                Ok(br#"{"ok":1}"#.to_vec())
            }
            (_, Behaviour::Panic) => panic!("engine bug"),
            (_, Behaviour::Answer) => Ok(br#"{"ok":1}"#.to_vec()),
        };
        GuestRun { session, result }
    }
}

fn artifact() -> ExtensionArtifact {
    let manifest = ExtensionManifest::from_yaml(
        "extension_id: t.fake\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: T}\nruntime: js\nresource_limits: {max_execution_ms: 50}\nactions: [{name: run}]\n",
        "manifest.yaml",
    )
    .expect("manifest");
    ExtensionArtifact::from_parts(manifest, b"// fake".to_vec())
}

async fn run(
    behaviour: Behaviour,
    memory: Enforcement,
    policy: HostPolicy,
) -> (
    Result<serde_json::Value>,
    Vec<morph_core::host::AuditRecord>,
) {
    let audit = Arc::new(MemoryAuditSink::default());
    let host = Arc::new(CapabilityHost::builder().audit(audit.clone()).build());
    let runtime = EngineRuntime::new(Fake { behaviour, memory }).expect("runtime");
    let ext = runtime
        .load(&artifact(), host, &policy)
        .await
        .expect("loads");
    let result = ext
        .execute("run", json!({}), &ExecutionContext::default())
        .await;
    (result, audit.records())
}

#[tokio::test]
async fn abandoned_and_panicked_executions_are_audited() {
    for (behaviour, kind) in [
        (Behaviour::IgnoreDeadline, ErrorKind::Timeout),
        (Behaviour::Panic, ErrorKind::HostError),
    ] {
        let (result, records) = run(
            behaviour,
            Enforcement::Native,
            HostPolicy::allow_requested(),
        )
        .await;
        assert_eq!(result.unwrap_err().kind(), kind);
        let execution = records
            .iter()
            .find(|r| r.op == "execute" && r.action == "run")
            .expect("the execution has an audit record");
        assert_eq!(execution.outcome, kind.as_str());
    }
}

#[tokio::test]
async fn best_effort_gaps_are_named_in_the_audit_record() {
    let policy = HostPolicy {
        enforcement: LimitEnforcement::BestEffort,
        ..HostPolicy::allow_requested()
    };
    let (result, records) = run(Behaviour::Answer, Enforcement::Unsupported, policy).await;
    assert_eq!(result.unwrap(), json!(1));
    let execution = records.iter().find(|r| r.op == "execute").expect("record");
    assert_eq!(execution.unenforced, ["memory"]);
    // Strict refuses the same backend at load.
    let audit = Arc::new(MemoryAuditSink::default());
    let host = Arc::new(CapabilityHost::builder().audit(audit).build());
    let runtime = EngineRuntime::new(Fake {
        behaviour: Behaviour::Answer,
        memory: Enforcement::Unsupported,
    })
    .expect("runtime");
    let e = runtime
        .load(&artifact(), host, &HostPolicy::allow_requested())
        .await
        .err()
        .expect("strict refuses");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}
