//! Where the JIT engines keep compiled modules between loads.

/// A store of compiled modules. Engines deserialize what [`get`] returns
/// without checking it (their deserializers are `unsafe`: a crafted
/// artifact runs arbitrary code), so this trait is `unsafe` to implement.
///
/// # Safety
///
/// [`get`] must return only bytes that were given to [`put`] with the same
/// `fingerprint` and `module`, unchanged: the implementation must detect
/// any entry it did not write itself (for example by a keyed MAC under a
/// key only it holds, as `morph_host::ModuleCache` does) and return `None`
/// for it.
///
/// [`get`]: CompiledModuleCache::get
/// [`put`]: CompiledModuleCache::put
#[allow(unsafe_code)]
pub unsafe trait CompiledModuleCache: Send + Sync {
    /// The artifact stored for `module` (the wasm bytes the engine
    /// compiled) by the engine configuration `fingerprint`, if any.
    fn get(&self, fingerprint: &str, module: &[u8]) -> Option<Vec<u8>>;

    /// Stores `artifact` for `module` compiled by `fingerprint`. Failures
    /// are the implementation's to log; a load never fails because of
    /// the cache.
    fn put(&self, fingerprint: &str, module: &[u8], artifact: &[u8]);
}
