//! PyTorch's legacy (pre-zip, `_use_new_zipfile_serialization=False`) checkpoints, read as far as
//! a `state_dict` of f32 tensors needs.
//!
//! The layout (`torch/serialization.py`, `_legacy_save`), five pieces back to back:
//!
//! 1. a pickle of the magic number `0x1950a86a20f9469cfc6c` (protocol 2, `LONG1` of 10 bytes),
//! 2. a pickle of the protocol version, 1001,
//! 3. a pickle of the system info dict (`little_endian`, `type_sizes`, …),
//! 4. the pickled object, whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset,
//!    size, stride, …)` calls and whose storages are persistent ids
//!    `('storage', torch.FloatStorage, key, location, numel, view_metadata)`,
//! 5. a pickle of the storage keys (sorted), then for each key in that order its element count
//!    as a little-endian `u64` and its raw little-endian elements.
//!
//! Pieces 2–5 are read with Candle's pickle interpreter ([`candle_core::pickle::Stack`]); the
//! magic number is compared byte for byte, because Candle decodes `LONG1` into an `i64` and the
//! magic number has 80 bits.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use candle_core::pickle::{Object, Stack};

/// The first pickle of a legacy checkpoint: `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)`.
const MAGIC_PICKLE: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];
/// The protocol version legacy checkpoints record.
const PROTOCOL_VERSION: i64 = 1001;

/// One f32 tensor of a state dict, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A storage referenced by the pickle: its element type (class name) and element count.
#[derive(Debug, Clone)]
struct StorageRef {
    class_name: String,
    numel: usize,
    has_view: bool,
}

/// Reads the f32 tensors of the state dict stored under `key` of the checkpoint's top-level dict
/// (`model_state` for resemblyzer). The error says what was unexpected.
pub fn read_state_dict(bytes: &[u8], key: &str) -> Result<HashMap<String, StoredTensor>, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Err("a zip checkpoint (PyTorch ≥ 1.6 format), not the legacy format".into());
    }
    if !bytes.starts_with(&MAGIC_PICKLE) {
        return Err("no legacy PyTorch magic number at the start".into());
    }
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(MAGIC_PICKLE.len() as u64);

    let protocol = unpickle(&mut cursor, "protocol version")?;
    match protocol.int_or_long() {
        Ok(PROTOCOL_VERSION) => {}
        Ok(other) => {
            return Err(format!(
                "protocol version {other}, expected {PROTOCOL_VERSION}"
            ))
        }
        Err(other) => return Err(format!("protocol version is {other:?}")),
    }
    let sys_info = unpickle(&mut cursor, "system info")?;
    let little_endian = dict_get(sys_info, "little_endian").and_then(|v| v.bool().ok());
    if little_endian != Some(true) {
        return Err("written on a big-endian machine (sys_info.little_endian is not True)".into());
    }

    let root = unpickle(&mut cursor, "checkpoint object")?;
    let mut storages = HashMap::new();
    collect_storages(&root, &mut storages)?;
    let state = dict_get(root, key).ok_or_else(|| format!("no `{key}` in the checkpoint"))?;
    let entries = state
        .dict()
        .map_err(|other| format!("`{key}` is not a dict: {}", brief(&other)))?;

    let keys = unpickle(&mut cursor, "storage keys")?;
    let keys = match keys {
        Object::List(keys) => keys,
        other => return Err(format!("storage keys are not a list: {}", brief(&other))),
    };
    let mut data: HashMap<String, Vec<f32>> = HashMap::new();
    for key in keys {
        let key = key
            .unicode()
            .map_err(|other| format!("storage key is not a string: {}", brief(&other)))?;
        let storage = storages
            .get(&key)
            .ok_or_else(|| format!("storage {key} is listed but never referenced"))?;
        let mut count = [0u8; 8];
        cursor
            .read_exact(&mut count)
            .map_err(|_| format!("truncated before storage {key}"))?;
        let numel = u64::from_le_bytes(count) as usize;
        if numel != storage.numel {
            return Err(format!(
                "storage {key} holds {numel} elements, the pickle says {}",
                storage.numel
            ));
        }
        let size = element_size(&storage.class_name)
            .ok_or_else(|| format!("storage {key}: unknown type {}", storage.class_name))?;
        let start = cursor.position() as usize;
        let end = numel
            .checked_mul(size)
            .and_then(|n| n.checked_add(start))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| format!("truncated in storage {key}"))?;
        if storage.class_name == "FloatStorage" {
            let values = bytes[start..end]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            data.insert(key, values);
        }
        cursor.set_position(end as u64);
    }

    let mut tensors = HashMap::new();
    for (name, value) in entries {
        let name = name
            .unicode()
            .map_err(|other| format!("`{key}` has a non-string key: {}", brief(&other)))?;
        // `_metadata` (module versions, set by BUILD on the OrderedDict) is not a tensor.
        if name == "_metadata" {
            continue;
        }
        let tensor = rebuild_tensor(value, &storages, &data).map_err(|e| format!("{name}: {e}"))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

fn unpickle(cursor: &mut Cursor<&[u8]>, what: &str) -> Result<Object, String> {
    let mut stack = Stack::empty();
    stack
        .read_loop(cursor)
        .map_err(|e| format!("reading the {what} pickle: {e}"))?;
    stack
        .finalize()
        .map_err(|e| format!("reading the {what} pickle: {e}"))
}

fn dict_get(object: Object, key: &str) -> Option<Object> {
    object.dict().ok()?.into_iter().find_map(|(k, v)| match k {
        Object::Unicode(k) if k == key => Some(v),
        _ => None,
    })
}

/// Element sizes of the legacy storage classes.
fn element_size(class_name: &str) -> Option<usize> {
    Some(match class_name {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

/// A storage persistent id: `('storage', class, key, location, numel, view_metadata)`.
fn storage_ref(id: &Object) -> Result<(String, StorageRef), String> {
    let fields = match id {
        Object::Tuple(fields) if fields.len() == 6 => fields,
        other => return Err(format!("unexpected persistent id {}", brief(other))),
    };
    match (&fields[0], &fields[1], &fields[2], &fields[4]) {
        (
            Object::Unicode(tag),
            Object::Class { class_name, .. },
            Object::Unicode(key),
            Object::Int(_) | Object::Long(_),
        ) if tag == "storage" => {
            let numel = fields[4].clone().int_or_long().unwrap_or(-1);
            let numel =
                usize::try_from(numel).map_err(|_| format!("storage {key}: size {numel}"))?;
            Ok((
                key.clone(),
                StorageRef {
                    class_name: class_name.clone(),
                    numel,
                    has_view: fields[5] != Object::None,
                },
            ))
        }
        _ => Err(format!("unexpected persistent id {}", brief(id))),
    }
}

/// Every storage referenced anywhere in `object` (the optimizer state's too: their bytes must be
/// skipped).
fn collect_storages(object: &Object, out: &mut HashMap<String, StorageRef>) -> Result<(), String> {
    match object {
        Object::PersistentLoad(id) => {
            let (key, storage) = storage_ref(id)?;
            out.insert(key, storage);
        }
        Object::Tuple(items) | Object::List(items) => {
            for item in items {
                collect_storages(item, out)?;
            }
        }
        Object::Dict(items) => {
            for (k, v) in items {
                collect_storages(k, out)?;
                collect_storages(v, out)?;
            }
        }
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            collect_storages(callable, out)?;
            collect_storages(args, out)?;
        }
        _ => {}
    }
    Ok(())
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)`
/// of a contiguous f32 tensor.
fn rebuild_tensor(
    value: Object,
    storages: &HashMap<String, StorageRef>,
    data: &HashMap<String, Vec<f32>>,
) -> Result<StoredTensor, String> {
    let (callable, args) = value
        .reduce()
        .map_err(|other| format!("not a tensor: {}", brief(&other)))?;
    match &callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        other => return Err(format!("built by {}, not _rebuild_tensor_v2", brief(other))),
    }
    let args = args
        .tuple()
        .map_err(|other| format!("arguments are {}", brief(&other)))?;
    if args.len() < 4 {
        return Err(format!("{} arguments to _rebuild_tensor_v2", args.len()));
    }
    let id = match &args[0] {
        Object::PersistentLoad(id) => id,
        other => return Err(format!("storage is {}", brief(other))),
    };
    let (key, storage) = storage_ref(id)?;
    let storage = storages.get(&key).unwrap_or(&storage);
    if storage.class_name != "FloatStorage" {
        return Err(format!("a {}, only f32 is supported", storage.class_name));
    }
    if storage.has_view {
        return Err("a storage view (view_metadata), not supported".into());
    }
    let offset = usize_of(&args[1]).ok_or("storage offset is not an integer")?;
    let shape = usizes_of(&args[2]).ok_or("size is not a tuple of integers")?;
    let stride = usizes_of(&args[3]).ok_or("stride is not a tuple of integers")?;
    let mut expected = 1;
    for (dim, (&size, &step)) in shape.iter().zip(&stride).enumerate().rev() {
        if size > 1 && step != expected {
            return Err(format!(
                "not contiguous (size {shape:?}, stride {stride:?}, dim {dim})"
            ));
        }
        expected *= size;
    }
    let numel: usize = shape.iter().product();
    let values = data
        .get(&key)
        .ok_or_else(|| format!("storage {key} is not in the file"))?;
    let values = values
        .get(offset..offset + numel)
        .ok_or_else(|| format!("elements {offset}..{} past storage {key}", offset + numel))?;
    Ok(StoredTensor {
        shape,
        data: values.to_vec(),
    })
}

fn usize_of(object: &Object) -> Option<usize> {
    usize::try_from(object.clone().int_or_long().ok()?).ok()
}

fn usizes_of(object: &Object) -> Option<Vec<usize>> {
    match object {
        Object::Tuple(items) => items.iter().map(usize_of).collect(),
        _ => None,
    }
}

/// An object for an error message, cut short.
fn brief(object: &Object) -> String {
    let mut text = format!("{object:?}");
    if text.len() > 120 {
        let mut end = 120;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_other_formats() {
        assert!(read_state_dict(b"PK\x03\x04rest", "model_state")
            .unwrap_err()
            .contains("zip"));
        assert!(read_state_dict(b"\x80\x02}q\x00.", "model_state")
            .unwrap_err()
            .contains("magic"));
    }

    #[test]
    fn truncated_file_is_an_error() {
        let mut bytes = MAGIC_PICKLE.to_vec();
        bytes.extend_from_slice(b"\x80\x02M\xe9\x03.");
        let error = read_state_dict(&bytes, "model_state").unwrap_err();
        assert!(error.contains("system info"), "{error}");
    }
}
