;; Hello: the demo extension of the README, written in WebAssembly text.
;; It shows the three things every extension does: describe itself,
;; execute actions, and reach the outside only through host calls.
;; ABI v1: see docs/abi.md.
(module
  (import "morph" "host_call" (func $host_call (param i32 i32) (result i32)))
  (import "morph" "host_response" (func $host_response (param i32 i32) (result i32)))
  (import "morph" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)

  ;; Constant strings: an offset and a length each.
  (global $hello i32 (i32.const 64)) (global $hello_len i32 (i32.const 5))
  (global $whoami i32 (i32.const 69)) (global $whoami_len i32 (i32.const 6))
  (global $secret i32 (i32.const 75)) (global $secret_len i32 (i32.const 6))
  (global $greeting i32 (i32.const 81)) (global $greeting_len i32 (i32.const 49))
  (global $logline i32 (i32.const 130)) (global $logline_len i32 (i32.const 16))
  (global $ok_open i32 (i32.const 146)) (global $ok_open_len i32 (i32.const 6))
  (global $close i32 (i32.const 152)) (global $close_len i32 (i32.const 1))
  (global $request i32 (i32.const 153)) (global $request_len i32 (i32.const 51))
  (global $unknown i32 (i32.const 204)) (global $unknown_len i32 (i32.const 53))
  (global $describe i32 (i32.const 257)) (global $describe_len i32 (i32.const 411))
  (data (i32.const 64) "hello")
  (data (i32.const 69) "whoami")
  (data (i32.const 75) "secret")
  (data (i32.const 81) "{\"ok\":{\"message\":\"Hello from a Morph extension\"}}")
  (data (i32.const 130) "hello action ran")
  (data (i32.const 146) "{\"ok\":")
  (data (i32.const 152) "}")
  (data (i32.const 153) "{\"op\":\"vault.get_secret\",\"args\":{\"key\":\"greeting\"}}")
  (data (i32.const 204) "{\"err\":{\"code\":\"unknown\",\"message\":\"no such action\"}}")
  (data (i32.const 257) "{\"name\":\"Hello\",\"version\":\"1.0.0\",\"actions\":[{\"name\":\"hello\",\"description\":\"Greets, and logs that it did.\",\"parameters\":[]},{\"name\":\"whoami\",\"description\":\"Returns the execution context the host passed in.\",\"parameters\":[]},{\"name\":\"secret\",\"description\":\"Reads the secret `greeting` from the vault through a host call and returns the host's response envelope.\",\"parameters\":[]}],\"events\":[],\"config_schema\":{}}")

  ;; A bump allocator from 8192; growing memory when needed.
  (global $heap (mut i32) (i32.const 8192))
  (func $alloc (export "morph_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "morph_abi_version") (result i32) (i32.const 1))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))

  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  (func (export "describe") (result i64)
    (call $pack (global.get $describe) (global.get $describe_len)))

  ;; `{"ok":` + bytes + `}` in a fresh buffer.
  (func $wrap_ok (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $total i32)
    (local.set $total (i32.add (local.get $len) (i32.add (global.get $ok_open_len) (global.get $close_len))))
    (local.set $out (call $alloc (local.get $total)))
    (memory.copy (local.get $out) (global.get $ok_open) (global.get $ok_open_len))
    (memory.copy (i32.add (local.get $out) (global.get $ok_open_len)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.sub (i32.add (local.get $out) (local.get $total)) (global.get $close_len)) (global.get $close) (global.get $close_len))
    (call $pack (local.get $out) (local.get $total)))

  (func (export "execute") (param $a i32) (param $al i32) (param $p i32) (param $pl i32) (param $c i32) (param $cl i32) (result i64)
    (local $n i32) (local $buf i32)
    (if (call $eq (local.get $a) (local.get $al) (global.get $hello) (global.get $hello_len))
      (then
        (call $log (i32.const 2) (global.get $logline) (global.get $logline_len))
        (return (call $pack (global.get $greeting) (global.get $greeting_len)))))
    (if (call $eq (local.get $a) (local.get $al) (global.get $whoami) (global.get $whoami_len))
      (then (return (call $wrap_ok (local.get $c) (local.get $cl)))))
    (if (call $eq (local.get $a) (local.get $al) (global.get $secret) (global.get $secret_len))
      (then
        ;; Two-phase host call: perform, then copy the response out.
        (local.set $n (call $host_call (global.get $request) (global.get $request_len)))
        (local.set $buf (call $alloc (local.get $n)))
        (drop (call $host_response (local.get $buf) (local.get $n)))
        (return (call $wrap_ok (local.get $buf) (local.get $n)))))
    (call $pack (global.get $unknown) (global.get $unknown_len)))
)
