//! The `#[repr(C)]` structs and constants of `longattn::sys` against the C header: a small C program
//! compiled with the system C compiler prints sizeof/offsetof of every struct and field, the value
//! of every integer macro and the bytes of every `_INIT` macro, and each must match Rust's.
//! The header is taken from LONGATTN_INCLUDE_DIR, else from this repository's include/.

use std::path::PathBuf;
use std::process::Command;

use longattn::sys;

macro_rules! offset_of_field {
    ($type:ty, $field:ident) => {{
        let value = std::mem::MaybeUninit::<$type>::uninit();
        let base = value.as_ptr();
        // Safety: addr_of! only computes the field's address inside the (uninitialised) local;
        // nothing is read.
        let field = unsafe { std::ptr::addr_of!((*base).$field) };
        field as usize - base as usize
    }};
}

/// (C expression, Rust value) pairs: every size and field offset of the structs.
fn rust_layout() -> Vec<(String, usize)> {
    let mut rows = Vec::new();
    macro_rules! size {
        ($c:literal, $type:ty) => {
            rows.push((format!("sizeof({})", $c), std::mem::size_of::<$type>()));
        };
    }
    macro_rules! fields {
        ($c:literal, $type:ty, [$($field:ident),*]) => {
            $( rows.push((format!("offsetof({}, {})", $c, stringify!($field)), offset_of_field!($type, $field))); )*
        };
    }
    size!("longattn_context_options", sys::longattn_context_options);
    fields!(
        "longattn_context_options",
        sys::longattn_context_options,
        [
            struct_size,
            backend,
            device_index,
            n_threads,
            flags,
            ring_devices,
            ring_layout,
            ring_transport
        ]
    );
    size!("longattn_tensor", sys::longattn_tensor);
    fields!(
        "longattn_tensor",
        sys::longattn_tensor,
        [data, dtype, memory, shape, strides]
    );
    size!("longattn_attention_desc", sys::longattn_attention_desc);
    fields!(
        "longattn_attention_desc",
        sys::longattn_attention_desc,
        [
            struct_size,
            algorithm,
            n_q_heads,
            n_kv_heads,
            head_dim,
            head_dim_v,
            scale,
            softcap,
            causal,
            window_left,
            window_right,
            n_global,
            hyper_block_size,
            hyper_sample_size,
            hyper_lsh_bits,
            hyper_min_seq_len,
            seed,
            max_bias,
            reserved0
        ]
    );
    size!("longattn_forward_args", sys::longattn_forward_args);
    fields!(
        "longattn_forward_args",
        sys::longattn_forward_args,
        [
            struct_size,
            reserved0,
            q,
            k,
            v,
            out,
            lse,
            q_pos0,
            stream,
            mask,
            alibi_slopes,
            sinks
        ]
    );
    size!("longattn_sharded_args", sys::longattn_sharded_args);
    fields!(
        "longattn_sharded_args",
        sys::longattn_sharded_args,
        [
            struct_size,
            n_shards,
            layout,
            queries,
            q,
            k,
            v,
            out,
            lse,
            q_pos0
        ]
    );
    rows
}

/// (C macro, Rust constant) pairs: every integer constant of the header.
fn rust_constants() -> Vec<(&'static str, i64)> {
    macro_rules! constants {
        ($($name:ident),* $(,)?) => {
            vec![$( (stringify!($name), sys::$name as i64) ),*]
        };
    }
    constants![
        LONGATTN_VERSION_MAJOR,
        LONGATTN_VERSION_MINOR,
        LONGATTN_VERSION_PATCH,
        LONGATTN_VERSION_NUMBER,
        LONGATTN_OK,
        LONGATTN_ERROR_INVALID_ARGUMENT,
        LONGATTN_ERROR_NULL_POINTER,
        LONGATTN_ERROR_SHAPE_MISMATCH,
        LONGATTN_ERROR_BAD_STRIDE,
        LONGATTN_ERROR_UNKNOWN_ENUM,
        LONGATTN_ERROR_STRUCT_SIZE,
        LONGATTN_ERROR_UNSUPPORTED,
        LONGATTN_ERROR_BACKEND_UNAVAILABLE,
        LONGATTN_ERROR_OUT_OF_MEMORY,
        LONGATTN_ERROR_DEVICE,
        LONGATTN_ERROR_INTERNAL,
        LONGATTN_BACKEND_AUTO,
        LONGATTN_BACKEND_CPU,
        LONGATTN_BACKEND_CUDA,
        LONGATTN_BACKEND_VULKAN,
        LONGATTN_DTYPE_F32,
        LONGATTN_DTYPE_F16,
        LONGATTN_DTYPE_BF16,
        LONGATTN_DTYPE_Q8_0,
        LONGATTN_DTYPE_Q4_0,
        LONGATTN_ALGORITHM_FLASH,
        LONGATTN_ALGORITHM_SPARSE,
        LONGATTN_ALGORITHM_HYPER,
        LONGATTN_MEMORY_HOST,
        LONGATTN_MEMORY_DEVICE,
        LONGATTN_CONTEXT_FALLBACK_CPU,
        LONGATTN_CONTEXT_RING_VIRTUAL,
        LONGATTN_CONTEXT_OPTIONS_MIN_SIZE,
        LONGATTN_ATTENTION_DESC_MIN_SIZE,
        LONGATTN_Q_POS_BOTTOM_RIGHT,
        LONGATTN_FORWARD_ARGS_MIN_SIZE,
        LONGATTN_RING_LAYOUT_AUTO,
        LONGATTN_RING_LAYOUT_CONTIGUOUS,
        LONGATTN_RING_LAYOUT_ZIGZAG,
        LONGATTN_SHARD_QUERIES_LOCAL,
        LONGATTN_SHARD_QUERIES_REPLICATED,
        LONGATTN_SHARDED_ARGS_MIN_SIZE,
    ]
}

/// The bytes of a padding-free `Copy` struct.
fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // Safety: every struct passed here is a plain #[repr(C)] struct without implicit padding (the
    // attention descriptor names its tail padding), so all size_of::<T>() bytes behind the
    // reference are initialised and readable as u8.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .to_vec()
}

/// (C type, _INIT macro, bytes of Rust's `Default`): the bytes to compare, up to the end of the
/// last named field of the C struct (the bytes of C padding are unspecified).
fn rust_defaults() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let desc = bytes_of(&sys::longattn_attention_desc::default());
    vec![
        (
            "longattn_context_options",
            "LONGATTN_CONTEXT_OPTIONS_INIT",
            bytes_of(&sys::longattn_context_options::default()),
        ),
        (
            "longattn_attention_desc",
            "LONGATTN_ATTENTION_DESC_INIT",
            desc,
        ),
        (
            "longattn_forward_args",
            "LONGATTN_FORWARD_ARGS_INIT",
            bytes_of(&sys::longattn_forward_args::default()),
        ),
        (
            "longattn_sharded_args",
            "LONGATTN_SHARDED_ARGS_INIT",
            bytes_of(&sys::longattn_sharded_args::default()),
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

fn include_dir() -> PathBuf {
    std::env::var_os("LONGATTN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include"))
}

#[test]
fn struct_layouts_and_constants_match_the_c_header() {
    let include_dir = include_dir();
    if !include_dir.join("longattn.h").exists() {
        eprintln!("skipping: no longattn.h in {}", include_dir.display());
        return;
    }
    let rows = rust_layout();
    let constants = rust_constants();
    let defaults = rust_defaults();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join("layout_probe.c");
    let binary = dir.join("layout_probe");
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"longattn.h\"\nint main(void) {\n",
    );
    for (expr, _) in &rows {
        program.push_str(&format!("  printf(\"%zu\\n\", (size_t)({}));\n", expr));
    }
    for (name, _) in &constants {
        program.push_str(&format!("  printf(\"%lld\\n\", (long long)({}));\n", name));
    }
    // the leading bytes of each _INIT macro, one hex line per struct
    for (c_type, init, bytes) in &defaults {
        program.push_str(&format!(
            "  {{ {t} x = {i}; const unsigned char* p = (const unsigned char*)&x;\n    for (size_t i = 0; i < {n}; ++i) printf(\"%02x\", p[i]); printf(\"\\n\"); }}\n",
            t = c_type, i = init, n = bytes.len()
        ));
    }
    program.push_str("  return 0;\n}\n");
    std::fs::write(&source, program).unwrap();
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let compiled = Command::new(&compiler)
        .arg("-I")
        .arg(&include_dir)
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .status();
    match compiled {
        Ok(status) if status.success() => {}
        other => {
            eprintln!(
                "skipping: C compiler {} unavailable ({:?})",
                compiler, other
            );
            return;
        }
    }
    let output = Command::new(&binary).output().unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), rows.len() + constants.len() + defaults.len());
    let (layout_lines, rest) = lines.split_at(rows.len());
    let (constant_lines, default_lines) = rest.split_at(constants.len());
    for ((expr, rust_value), line) in rows.iter().zip(layout_lines) {
        let c_value: usize = line.trim().parse().unwrap();
        assert_eq!(
            *rust_value, c_value,
            "{}: Rust {} vs C {}",
            expr, rust_value, c_value
        );
    }
    for ((name, rust_value), line) in constants.iter().zip(constant_lines) {
        let c_value: i64 = line.trim().parse().unwrap();
        assert_eq!(
            *rust_value, c_value,
            "{}: Rust {} vs C {}",
            name, rust_value, c_value
        );
    }
    // Default::default() of each struct equals its C _INIT macro, byte for byte.
    for ((c_type, _, bytes), line) in defaults.iter().zip(default_lines) {
        assert_eq!(
            line.trim(),
            hex(bytes),
            "{} default differs from its _INIT macro",
            c_type
        );
    }
    eprintln!(
        "{} sizes and offsets, {} constants and {} defaults match",
        rows.len(),
        constants.len(),
        defaults.len()
    );
}

/// Every function the header exports is declared in `longattn::sys`.
#[test]
fn every_header_function_is_declared() {
    let include_dir = include_dir();
    let header = match std::fs::read_to_string(include_dir.join("longattn.h")) {
        Ok(header) => header,
        Err(_) => {
            eprintln!("skipping: no longattn.h in {}", include_dir.display());
            return;
        }
    };
    let sys_source = include_str!("../src/sys.rs");
    let mut exported = Vec::new();
    for declaration in header.split("LONGATTN_API").skip(1) {
        // "<return type> longattn_name(" : the identifier right before the first '('
        let open_paren = match declaration.find('(') {
            Some(at) => at,
            None => continue,
        };
        let head = &declaration[..open_paren];
        let name = head
            .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        if name.starts_with("longattn_") {
            exported.push(name.to_string());
        }
    }
    assert!(exported.len() > 10, "parsed only {:?}", exported);
    let missing: Vec<_> = exported
        .iter()
        .filter(|name| !sys_source.contains(&format!("pub fn {}(", name)))
        .collect();
    assert!(
        missing.is_empty(),
        "declared in longattn.h but not in sys.rs: {:?}",
        missing
    );
}
