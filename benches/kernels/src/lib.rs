//! The compute kernels of Morph's benchmarks. The same source runs natively
//! (the baseline) and inside every wasm backend (built for wasm32 by
//! `benches/kernels-wasm/build.sh`), so a ratio compares engines, not code.
//!
//! Every kernel is deterministic and returns a checksum, so the optimiser
//! cannot drop the work and the native and wasm results can be compared.
//! Kernels take their size as input; nothing is precomputed.
//!
//! `benches/kernels-js` and `benches/kernels-py` write the same kernels in
//! JavaScript and Python; their results equal [`run`]'s at the same size
//! (the script sizes, [`SCRIPT_KERNELS`]).
#![forbid(unsafe_code)]

use serde_json::{Value, json};

/// The kernels and their default (full-mode) parameters, in report order.
pub const KERNELS: &[(&str, u64)] = &[
    ("fib", 25),
    ("sha256", 1 << 20),
    ("json", 100 << 10),
    ("loop", 10_000_000),
    ("memcpy", 1 << 20),
];

/// The same kernels at the sizes the JavaScript and Python versions
/// (`benches/kernels-js`, `benches/kernels-py`) run at, in the same order:
/// interpreted scripts are 20-2000x slower than native code, so each
/// execution stays well under a second on Boa and CPython (measured in the
/// bench profile: at most about 0.35 s, Boa's sha256). The benches run
/// native code (and wasmtime) at these sizes too, so a script's ratio
/// compares the same work.
pub const SCRIPT_KERNELS: &[(&str, u64)] = &[
    ("fib", 22),
    ("sha256", 64 << 10),
    ("json", 10 << 10),
    ("loop", 200_000),
    ("memcpy", 1 << 20),
];

/// Recursive Fibonacci (exponential calls: measures call overhead).
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// SHA-256 (FIPS 180-4), written out here rather than taken from a crate,
/// so native code cannot use CPU SHA extensions the guest cannot.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// `len` deterministic pseudo-random bytes (xorshift64, 8 bytes a step).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds a JSON document of about `size` bytes (records of users with
/// tags and scores), serialises it, parses it back and transforms it
/// (active users' names upper-cased, scores summed per tag), then
/// serialises the result. Returns the result's length and a checksum.
pub fn json_transform(size: usize) -> (usize, u64) {
    let mut records = Vec::new();
    let mut text_len = 0;
    let mut i = 0u64;
    while text_len < size {
        let record = json!({
            "id": i,
            "name": format!("user-{i:06}"),
            "active": !i.is_multiple_of(3),
            "score": (i * 7919 % 1000) as f64 / 10.0,
            "tags": [format!("t{}", i % 7), format!("t{}", i % 11)],
        });
        text_len += record.to_string().len() + 1;
        records.push(record);
        i += 1;
    }
    let text = Value::Array(records).to_string();
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut names = Vec::new();
    let mut per_tag = serde_json::Map::new();
    for record in parsed.as_array().into_iter().flatten() {
        if record["active"] != Value::Bool(true) {
            continue;
        }
        names.push(Value::String(
            record["name"].as_str().unwrap_or_default().to_uppercase(),
        ));
        let score = record["score"].as_f64().unwrap_or(0.0);
        for tag in record["tags"].as_array().into_iter().flatten() {
            let key = tag.as_str().unwrap_or_default().to_string();
            let sum = per_tag.get(&key).and_then(Value::as_f64).unwrap_or(0.0) + score;
            per_tag.insert(key, json!(sum));
        }
    }
    let out = json!({"names": names, "per_tag": per_tag}).to_string();
    let checksum = out
        .bytes()
        .fold(0u64, |acc, b| acc.rotate_left(5) ^ u64::from(b));
    (out.len(), checksum)
}

/// A tight integer loop: `n` xorshift steps summed.
pub fn int_loop(n: u64) -> u64 {
    let (mut x, mut acc) = (0x9e37_79b9_7f4a_7c15u64, 0u64);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(x);
    }
    acc
}

/// Copies a `size`-byte buffer back and forth 64 times (`memory.copy` in
/// wasm, `memcpy` natively), touching one byte between copies.
pub fn memcpy(size: usize) -> u64 {
    let mut a = vec![0x5au8; size];
    let mut b = vec![0u8; size];
    for round in 0..64u8 {
        b.copy_from_slice(&a);
        b[round as usize % size.max(1)] ^= round;
        a.copy_from_slice(&b);
    }
    a.iter()
        .step_by(4096)
        .fold(0u64, |acc, &x| acc.rotate_left(3) ^ u64::from(x))
}

/// Runs kernel `name` with size parameter `n`; the result is JSON so the
/// native and wasm runs can be compared. Unknown kernels are an error.
pub fn run(name: &str, n: u64) -> Result<Value, String> {
    Ok(match name {
        "fib" => json!(fib(n as u32)),
        "sha256" => json!(hex(&sha256(&bytes(n as usize, 1)))),
        "json" => {
            let (len, checksum) = json_transform(n as usize);
            json!({"len": len, "checksum": checksum})
        }
        "loop" => json!(int_loop(n)),
        "memcpy" => json!(memcpy(n as usize)),
        other => return Err(format!("no kernel `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_digests() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = vec![b'a'; 1_000];
        assert_eq!(
            hex(&sha256(&long)),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn kernels_are_deterministic() {
        assert_eq!(fib(20), 6765);
        for (name, _) in KERNELS {
            let n = if *name == "fib" { 15 } else { 4096 };
            assert_eq!(run(name, n), run(name, n), "{name}");
        }
        let (len, _) = json_transform(10 << 10);
        assert!(len > 1000);
        assert!(run("nope", 1).is_err());
    }

    #[test]
    fn script_sizes_cover_every_kernel_in_order() {
        fn names(kernels: &[(&'static str, u64)]) -> Vec<&'static str> {
            kernels.iter().map(|(name, _)| *name).collect()
        }
        assert_eq!(names(SCRIPT_KERNELS), names(KERNELS));
    }
}
