//! The `#[repr(C)]` structs of `longattn::sys` against the C header: a small C program compiled
//! with the system C compiler prints sizeof/offsetof of every struct and field, and each must match.
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

/// (C expression, Rust value) pairs: every size and field offset of the four structs.
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
        [struct_size, backend, device_index, n_threads, flags]
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
            seed
        ]
    );
    size!("longattn_forward_args", sys::longattn_forward_args);
    fields!(
        "longattn_forward_args",
        sys::longattn_forward_args,
        [struct_size, reserved0, q, k, v, out, lse, q_pos0, stream]
    );
    rows
}

const INIT_MACROS: [(&str, &str); 3] = [
    ("longattn_context_options", "LONGATTN_CONTEXT_OPTIONS_INIT"),
    ("longattn_attention_desc", "LONGATTN_ATTENTION_DESC_INIT"),
    ("longattn_forward_args", "LONGATTN_FORWARD_ARGS_INIT"),
];

/// The bytes of a padding-free `Copy` struct as lowercase hex.
fn hex_bytes<T: Copy>(value: &T) -> String {
    // Safety: T is a plain #[repr(C)] struct without padding, so all size_of::<T>() bytes behind
    // the reference are initialised and readable as u8.
    let bytes = unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

#[test]
fn struct_layouts_match_the_c_header() {
    let include_dir = std::env::var_os("LONGATTN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include"));
    if !include_dir.join("longattn.h").exists() {
        eprintln!("skipping: no longattn.h in {}", include_dir.display());
        return;
    }
    let rows = rust_layout();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let source = dir.join("layout_probe.c");
    let binary = dir.join("layout_probe");
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"longattn.h\"\nint main(void) {\n",
    );
    for (expr, _) in &rows {
        program.push_str(&format!("  printf(\"%zu\\n\", (size_t){});\n", expr));
    }
    // the bytes of each _INIT macro (these structs have no padding), one hex line per struct
    for (c_type, init) in INIT_MACROS {
        program.push_str(&format!(
            "  {{ {t} x = {i}; const unsigned char* p = (const unsigned char*)&x;\n    for (size_t i = 0; i < sizeof x; ++i) printf(\"%02x\", p[i]); printf(\"\\n\"); }}\n",
            t = c_type, i = init
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
    assert_eq!(lines.len(), rows.len() + INIT_MACROS.len());
    let c_values: Vec<usize> = lines[..rows.len()]
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    for ((expr, rust_value), c_value) in rows.iter().zip(&c_values) {
        assert_eq!(
            *rust_value, *c_value,
            "{}: Rust {} vs C {}",
            expr, rust_value, c_value
        );
    }
    // Default::default() of each struct equals its C _INIT macro, byte for byte.
    let rust_init = [
        hex_bytes(&sys::longattn_context_options::default()),
        hex_bytes(&sys::longattn_attention_desc::default()),
        hex_bytes(&sys::longattn_forward_args::default()),
    ];
    for ((c_type, _), (c_line, rust_line)) in INIT_MACROS
        .iter()
        .zip(lines[rows.len()..].iter().zip(&rust_init))
    {
        assert_eq!(
            c_line.trim(),
            rust_line,
            "{} default differs from its _INIT macro",
            c_type
        );
    }
    eprintln!("{} sizes and offsets match", rows.len());
}

/// Every function the header exports is declared in `longattn::sys`.
#[test]
fn every_header_function_is_declared() {
    let include_dir = std::env::var_os("LONGATTN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include"));
    let Ok(header) = std::fs::read_to_string(include_dir.join("longattn.h")) else {
        eprintln!("skipping: no longattn.h in {}", include_dir.display());
        return;
    };
    let sys_source = include_str!("../src/sys.rs");
    let mut exported = Vec::new();
    for declaration in header.split("LONGATTN_API").skip(1) {
        // "<return type> longattn_name(" : the identifier right before the first '('
        let Some(open_paren) = declaration.find('(') else {
            continue;
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
