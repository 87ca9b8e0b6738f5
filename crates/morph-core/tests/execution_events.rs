//! Events an execution emitted are published when it succeeds, and only
//! then: one that fails after emitting (a limit hit, a protocol
//! violation, its own error) publishes nothing.

use std::sync::Arc;

use morph_core::host::RecordingEventBus;
use morph_core::{
    Backend, BaseMorphRuntime, CapabilityHost, EffectivePolicy, Enforcement, EngineLimit,
    EngineRuntime, EntryCode, ErrorKind, ExecutionContext, ExtensionArtifact, ExtensionManifest,
    GuestCall, GuestRun, HostPolicy, MorphError, PreparedExtension, Result, RuntimeInfo,
    RuntimeKind, Session,
};
use serde_json::json;

/// Emits `done`, then ends as its action says.
struct Emitter;

const DESCRIBE: &str = r#"{"name":"E","version":"1.0.0","actions":[
  {"name":"succeed","parameters":[]},{"name":"fail","parameters":[]},
  {"name":"violate","parameters":[]},{"name":"err_envelope","parameters":[]}],
  "events":["done"],"config_schema":{}}"#;

const EMIT: &[u8] = br#"{"op": "events.emit", "args": {"name": "done", "payload": {"n": 1}}}"#;

impl Backend for Emitter {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo::script(
            "emitter",
            "emitter",
            "0",
            RuntimeKind::Js,
            [
                (EngineLimit::ExecutionTime, Enforcement::Native),
                (EngineLimit::Memory, Enforcement::Native),
                (EngineLimit::Stack, Enforcement::Native),
                (EngineLimit::Fuel, Enforcement::Unsupported),
            ],
        )
    }

    fn prepare(&self, _: &EntryCode, _: &EffectivePolicy) -> Result<Arc<dyn PreparedExtension>> {
        Ok(Arc::new(Emitter))
    }
}

impl PreparedExtension for Emitter {
    fn run(&self, mut session: Session, call: GuestCall<'_>) -> GuestRun {
        let action = match call {
            GuestCall::Describe => {
                return GuestRun {
                    session,
                    result: Ok(DESCRIBE.as_bytes().to_vec()),
                };
            }
            GuestCall::Execute { action, .. } => action,
        };
        let emitted = session.guest_call(EMIT);
        let result = match (emitted, action) {
            (Err(e), _) => Err(e),
            (Ok(_), "succeed") => Ok(br#"{"ok": 1}"#.to_vec()),
            (Ok(_), "fail") => Err(MorphError::memory_limit("the guest ran out of memory")),
            (Ok(_), "violate") => {
                // Recorded as fatal; the guest answers normally after it.
                let _ = session.fail(MorphError::abi_violation("a bad frame"));
                Ok(br#"{"ok": 1}"#.to_vec())
            }
            (Ok(_), _) => Ok(br#"{"err": {"code": "bad_input", "message": "no"}}"#.to_vec()),
        };
        let result = session.fatal_wins(result);
        GuestRun { session, result }
    }
}

fn artifact() -> ExtensionArtifact {
    let manifest = ExtensionManifest::from_yaml(
        "extension_id: t.emitter\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: E}\n\
         runtime: js\npermissions: [event:emit]\nevents: [done]\n\
         actions: [{name: succeed}, {name: fail}, {name: violate}, {name: err_envelope}]\n",
        "manifest.yaml",
    )
    .expect("manifest");
    ExtensionArtifact::from_parts(manifest, b"// emitter".to_vec())
}

#[tokio::test]
async fn only_a_successful_execution_publishes_its_events() {
    let bus = Arc::new(RecordingEventBus::default());
    let host = Arc::new(CapabilityHost::builder().events(bus.clone()).build());
    let runtime = EngineRuntime::new(Emitter).expect("runtime");
    let ext = runtime
        .load(&artifact(), host, &HostPolicy::allow_requested())
        .await
        .expect("loads");
    let ctx = ExecutionContext::default();
    for (action, kind) in [
        ("fail", ErrorKind::MemoryLimit),
        ("violate", ErrorKind::AbiViolation),
        ("err_envelope", ErrorKind::ExtensionError),
    ] {
        let e = ext
            .execute(action, json!({}), &ctx)
            .await
            .expect_err("fails");
        assert_eq!(e.kind(), kind, "{action}: {e}");
        assert!(
            bus.events().is_empty(),
            "{action} failed and published {:?}",
            bus.events()
        );
    }
    assert_eq!(
        ext.execute("succeed", json!({}), &ctx).await.expect("ok"),
        json!(1)
    );
    let events = bus.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name, "t.emitter/done");
}
