//! Values of a `TensorProto`, with every size bounded before anything is allocated.

use super::graph_def::{TensorProto, TensorShapeProto, data_type};

/// The most elements one constant may have (256 Mi, i.e. 1 GiB of f32). A splat constant
/// (one value broadcast to its shape) is the only case where the file's size does not already
/// bound the allocation, so this caps it.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// The most dimensions a constant may have.
pub const MAX_RANK: usize = 8;

/// The shape of a constant: every dimension known and non-negative, the element count at most
/// [`MAX_TENSOR_ELEMENTS`]. Returns the dimensions and the element count.
pub fn const_shape(shape: Option<&TensorShapeProto>) -> Result<(Vec<usize>, usize), String> {
    let Some(shape) = shape else {
        return Ok((Vec::new(), 1));
    };
    if shape.unknown_rank {
        return Err("shape has unknown rank".into());
    }
    if shape.dim.len() > MAX_RANK {
        return Err(format!(
            "rank {} exceeds the limit of {MAX_RANK}",
            shape.dim.len()
        ));
    }
    let mut dims = Vec::with_capacity(shape.dim.len());
    let mut count: usize = 1;
    for (axis, dim) in shape.dim.iter().enumerate() {
        let size = usize::try_from(dim.size)
            .map_err(|_| format!("dimension {axis} has size {}", dim.size))?;
        count = count
            .checked_mul(size)
            .filter(|&c| c <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                format!(
                    "shape {:?} exceeds {MAX_TENSOR_ELEMENTS} elements",
                    dims_of(shape)
                )
            })?;
        dims.push(size);
    }
    Ok((dims, count))
}

fn dims_of(shape: &TensorShapeProto) -> Vec<i64> {
    shape.dim.iter().map(|d| d.size).collect()
}

/// The f32 values of a `DT_FLOAT` tensor, row-major, from `tensor_content` (raw little-endian
/// bytes) or `float_val` (all values, one value broadcast, or none meaning zeros, as TensorFlow
/// reads them).
pub fn float_values(tensor: &TensorProto) -> Result<(Vec<usize>, Vec<f32>), String> {
    if tensor.dtype != data_type::FLOAT {
        return Err(format!(
            "dtype is {}, not DT_FLOAT",
            data_type::name(tensor.dtype)
        ));
    }
    let (shape, count) = const_shape(tensor.tensor_shape.as_ref())?;
    if !tensor.tensor_content.is_empty() {
        let expected = count * 4;
        if tensor.tensor_content.len() != expected {
            return Err(format!(
                "tensor_content has {} bytes, shape {shape:?} needs {expected}",
                tensor.tensor_content.len()
            ));
        }
        let values = tensor
            .tensor_content
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        return Ok((shape, values));
    }
    let values = match tensor.float_val.len() {
        n if n == count => tensor.float_val.clone(),
        0 => vec![0.0; count],
        1 => vec![tensor.float_val[0]; count],
        n => {
            return Err(format!(
                "float_val has {n} values, shape {shape:?} needs {count} (or 1 to broadcast)"
            ));
        }
    };
    Ok((shape, values))
}

/// The values of an integer or boolean tensor widened to i64, row-major, or `None` for other
/// types. Only for small tensors: the caller bounds `count` first.
pub fn integer_values(tensor: &TensorProto, count: usize) -> Result<Option<Vec<i64>>, String> {
    let (width, from_list): (usize, Vec<i64>) = match tensor.dtype {
        data_type::INT32 | data_type::UINT8 => (
            if tensor.dtype == data_type::INT32 {
                4
            } else {
                1
            },
            tensor.int_val.iter().map(|&v| i64::from(v)).collect(),
        ),
        data_type::INT64 => (8, tensor.int64_val.clone()),
        data_type::BOOL => (1, tensor.bool_val.iter().map(|&b| i64::from(b)).collect()),
        _ => return Ok(None),
    };
    if !tensor.tensor_content.is_empty() {
        if tensor.tensor_content.len() != count * width {
            return Err(format!(
                "tensor_content has {} bytes, {count} elements of {width} bytes need {}",
                tensor.tensor_content.len(),
                count * width
            ));
        }
        let dtype = tensor.dtype;
        let values = tensor
            .tensor_content
            .chunks_exact(width)
            .map(|b| match dtype {
                data_type::INT32 => {
                    <[u8; 4]>::try_from(b).map(|a| i64::from(i32::from_le_bytes(a)))
                }
                data_type::INT64 => <[u8; 8]>::try_from(b).map(i64::from_le_bytes),
                _ => <[u8; 1]>::try_from(b).map(|a| i64::from(a[0])),
            })
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|_| format!("tensor_content is not made of {width}-byte elements"))?;
        return Ok(Some(values));
    }
    Ok(Some(match from_list.len() {
        n if n == count => from_list,
        0 => vec![0; count],
        1 => vec![from_list[0]; count],
        n => {
            return Err(format!(
                "{n} values listed, {count} needed (or 1 to broadcast)"
            ));
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tf_import::graph_def::tensor_shape_proto::Dim;

    fn shape(dims: &[i64]) -> Option<TensorShapeProto> {
        Some(TensorShapeProto {
            dim: dims.iter().map(|&size| Dim { size }).collect(),
            unknown_rank: false,
        })
    }

    fn float_tensor(dims: &[i64]) -> TensorProto {
        TensorProto {
            dtype: data_type::FLOAT,
            tensor_shape: shape(dims),
            ..Default::default()
        }
    }

    #[test]
    fn raw_content_is_little_endian_row_major() {
        let mut t = float_tensor(&[2, 2]);
        t.tensor_content = [1.0f32, -2.0, 0.5, 3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (shape, values) = float_values(&t).unwrap();
        assert_eq!(shape, vec![2, 2]);
        assert_eq!(values, vec![1.0, -2.0, 0.5, 3.25]);
    }

    #[test]
    fn one_float_val_broadcasts_to_the_shape() {
        let mut t = float_tensor(&[3]);
        t.float_val = vec![0.001];
        assert_eq!(float_values(&t).unwrap().1, vec![0.001; 3]);
    }

    #[test]
    fn scalar_without_shape_is_one_value() {
        let mut t = float_tensor(&[]);
        t.float_val = vec![0.6];
        let (shape, values) = float_values(&t).unwrap();
        assert!(shape.is_empty());
        assert_eq!(values, vec![0.6]);
    }

    #[test]
    fn content_shorter_than_the_shape_is_refused() {
        let mut t = float_tensor(&[3, 3, 3, 32]);
        t.tensor_content = vec![0; 3 * 3 * 3 * 32 * 4 - 1];
        let err = float_values(&t).unwrap_err();
        assert!(err.contains("3455 bytes"), "{err}");
    }

    #[test]
    fn huge_splat_shape_is_refused_before_allocating() {
        let mut t = float_tensor(&[1 << 20, 1 << 20]);
        t.float_val = vec![1.0];
        let err = float_values(&t).unwrap_err();
        assert!(err.contains("exceeds"), "{err}");
    }

    #[test]
    fn overflowing_shape_is_refused() {
        let t = float_tensor(&[i64::MAX, i64::MAX, 2]);
        assert!(float_values(&t).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn negative_dimension_is_refused() {
        let t = float_tensor(&[-1, 3]);
        assert!(float_values(&t).unwrap_err().contains("dimension 0"));
    }

    #[test]
    fn wrong_dtype_is_named() {
        let mut t = float_tensor(&[1]);
        t.dtype = data_type::INT32;
        assert!(float_values(&t).unwrap_err().contains("DT_INT32"));
    }

    #[test]
    fn int32_content_and_lists_decode() {
        let t = TensorProto {
            dtype: data_type::INT32,
            tensor_shape: shape(&[2]),
            tensor_content: [-1i32, 4].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        assert_eq!(integer_values(&t, 2).unwrap(), Some(vec![-1, 4]));
        let t = TensorProto {
            dtype: data_type::INT32,
            int_val: vec![100],
            ..Default::default()
        };
        assert_eq!(integer_values(&t, 1).unwrap(), Some(vec![100]));
    }
}
