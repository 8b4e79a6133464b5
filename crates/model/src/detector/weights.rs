//! Reads the converted detector (safetensors whose tensor names are the TF node names, in TF
//! layout), checks every tensor the architecture needs against its expected shape, transposes TF
//! layouts to the (out, in·k·k) matrices of [`SameConv`] and folds BatchNorm into them.
//!
//! TF layouts: a convolution's `weights` are HWIO (kh, kw, in, out); a depthwise convolution's
//! `depthwise_weights` are (kh, kw, channels, multiplier = 1).

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::conv::{Activation, SameConv};
use super::depthwise::{DepthwiseConv, KERNEL};
use super::error::DetectorError;

/// BatchNorm epsilon of the graph's FusedBatchNorm nodes, used when a converted file does not
/// carry the `…/BatchNorm/batchnorm/add/y` constant.
pub const DEFAULT_BATCH_NORM_EPSILON: f32 = 1e-3;

/// A parsed safetensors file of TF-named f32 tensors.
pub struct WeightFile<'a> {
    path: PathBuf,
    tensors: SafeTensors<'a>,
}

impl<'a> WeightFile<'a> {
    /// Parses `bytes`, read from `path` (named in errors).
    pub fn parse(path: &Path, bytes: &'a [u8]) -> Result<Self, DetectorError> {
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| DetectorError::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The file these tensors come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// The f32 values of `name`, which must have exactly `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, DetectorError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| DetectorError::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(DetectorError::TensorDtype {
                path: self.path.clone(),
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != shape {
            return Err(DetectorError::TensorShape {
                path: self.path.clone(),
                name: name.to_string(),
                found: view.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.value_error(name, format!("element {i} is {}", values[i])));
        }
        Ok(values)
    }

    /// A one-element tensor (TF scalars are stored as shape `[]` or `[1]`).
    pub fn scalar(&self, name: &str) -> Result<f32, DetectorError> {
        let shape = match self.tensors.tensor(name) {
            Ok(view) if view.shape().is_empty() => vec![],
            _ => vec![1],
        };
        Ok(self.tensor(name, &shape)?[0])
    }

    fn value_error(&self, name: &str, message: String) -> DetectorError {
        DetectorError::TensorValue {
            path: self.path.clone(),
            name: name.to_string(),
            message,
        }
    }

    /// Per-channel scale and shift of the BatchNorm under `scope` (inference statistics).
    fn batch_norm(
        &self,
        scope: &str,
        channels: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), DetectorError> {
        let bn = format!("{scope}/BatchNorm");
        let gamma = self.tensor(&format!("{bn}/gamma"), &[channels])?;
        let beta = self.tensor(&format!("{bn}/beta"), &[channels])?;
        let mean = self.tensor(&format!("{bn}/moving_mean"), &[channels])?;
        let var_name = format!("{bn}/moving_variance");
        let var = self.tensor(&var_name, &[channels])?;
        let eps_name = format!("{bn}/batchnorm/add/y");
        let eps = if self.contains(&eps_name) {
            self.scalar(&eps_name)?
        } else {
            DEFAULT_BATCH_NORM_EPSILON
        };
        if let Some(i) = var.iter().position(|&v| v + eps <= 0.0) {
            return Err(self.value_error(
                &var_name,
                format!("variance {} at {i} is not positive", var[i]),
            ));
        }
        // y = γ·(x − μ)/√(σ² + ε) + β = scale·x + shift, computed in f64 so folding adds no error
        // beyond the final rounding to f32.
        let mut scale = Vec::with_capacity(channels);
        let mut shift = Vec::with_capacity(channels);
        for i in 0..channels {
            let s = f64::from(gamma[i]) / (f64::from(var[i]) + f64::from(eps)).sqrt();
            scale.push(s);
            shift.push((f64::from(beta[i]) - f64::from(mean[i]) * s) as f32);
        }
        Ok((scale.into_iter().map(|s| s as f32).collect(), shift))
    }

    /// HWIO `weights` of `scope` as an (out, in·k·k) matrix with rows ordered (in, ky, kx).
    fn conv_matrix(
        &self,
        scope: &str,
        kernel: usize,
        cin: usize,
        cout: usize,
    ) -> Result<Vec<f32>, DetectorError> {
        let hwio = self.tensor(&format!("{scope}/weights"), &[kernel, kernel, cin, cout])?;
        let kk = kernel * kernel;
        let mut m = vec![0f32; cout * cin * kk];
        for ky in 0..kernel {
            for kx in 0..kernel {
                for ci in 0..cin {
                    let src = &hwio[((ky * kernel + kx) * cin + ci) * cout..][..cout];
                    for (o, &v) in src.iter().enumerate() {
                        m[o * cin * kk + ci * kk + ky * kernel + kx] = v;
                    }
                }
            }
        }
        Ok(m)
    }

    /// A convolution followed by BatchNorm (folded) and `activation`.
    pub fn conv_bn(
        &self,
        scope: &str,
        kernel: usize,
        stride: usize,
        cin: usize,
        cout: usize,
        activation: Activation,
    ) -> Result<SameConv, DetectorError> {
        let mut m = self.conv_matrix(scope, kernel, cin, cout)?;
        let (scale, shift) = self.batch_norm(scope, cout)?;
        for (row, s) in m.chunks_exact_mut(cin * kernel * kernel).zip(&scale) {
            row.iter_mut().for_each(|v| *v *= s);
        }
        Ok(SameConv::new(m, shift, cin, kernel, stride, activation)?)
    }

    /// A convolution with its own `biases` (the box and class predictors), no activation.
    pub fn conv_biased(
        &self,
        scope: &str,
        kernel: usize,
        cin: usize,
        cout: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), DetectorError> {
        let m = self.conv_matrix(scope, kernel, cin, cout)?;
        let bias = self.tensor(&format!("{scope}/biases"), &[cout])?;
        Ok((m, bias))
    }

    /// A depthwise 3×3 convolution followed by BatchNorm (folded) and ReLU6.
    pub fn depthwise_bn(
        &self,
        scope: &str,
        stride: usize,
        channels: usize,
    ) -> Result<DepthwiseConv, DetectorError> {
        let hwcm = self.tensor(
            &format!("{scope}/depthwise_weights"),
            &[KERNEL, KERNEL, channels, 1],
        )?;
        let (scale, shift) = self.batch_norm(scope, channels)?;
        let mut w = vec![0f32; channels * KERNEL * KERNEL];
        for tap in 0..KERNEL * KERNEL {
            for c in 0..channels {
                w[c * KERNEL * KERNEL + tap] = hwcm[tap * channels + c] * scale[c];
            }
        }
        Ok(DepthwiseConv::new(w, shift, stride, Activation::Relu6)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use std::collections::HashMap;

    fn file_with(tensors: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
        let views: HashMap<String, Tensor> = tensors
            .iter()
            .map(|(n, s, v)| {
                (
                    n.to_string(),
                    Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu).unwrap(),
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        candle_core::safetensors::save(&views, &p).unwrap();
        std::fs::read(&p).unwrap()
    }

    #[test]
    fn folds_batch_norm_and_transposes_hwio() -> Result<(), DetectorError> {
        // 1×1 conv, 2 in, 3 out: HWIO [1,1,2,3].
        let w: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let bytes = file_with(&[
            ("s/weights", vec![1, 1, 2, 3], w),
            ("s/BatchNorm/gamma", vec![3], vec![1.0, 3.0, 0.5]),
            ("s/BatchNorm/beta", vec![3], vec![0.0, 1.0, -1.0]),
            ("s/BatchNorm/moving_mean", vec![3], vec![1.0, 0.0, 2.0]),
            ("s/BatchNorm/moving_variance", vec![3], vec![1.0, 4.0, 0.25]),
            ("s/BatchNorm/batchnorm/add/y", vec![1], vec![0.0]),
        ]);
        let file = WeightFile::parse(Path::new("w.safetensors"), &bytes)?;
        let conv = file.conv_bn("s", 1, 1, 2, 3, Activation::Linear)?;
        let m = conv.weight_oihw()?.flatten_all()?.to_vec1::<f32>()?;
        // out o, in i: HWIO[i·3 + o] · γ/σ.
        assert_eq!(m, vec![0.0, 3.0, 1.5, 6.0, 2.0, 5.0]);
        assert_eq!(conv.bias(), &[-1.0, 1.0, -3.0]);
        Ok(())
    }

    #[test]
    fn wrong_model_file_names_the_tensor() {
        let bytes = file_with(&[("s/weights", vec![3, 3, 2, 3], vec![0.0; 54])]);
        let file = WeightFile::parse(Path::new("m.safetensors"), &bytes).unwrap();
        let err = file
            .conv_bn("s", 1, 1, 2, 3, Activation::Relu6)
            .unwrap_err();
        assert!(
            matches!(&err, DetectorError::TensorShape { name, .. } if name == "s/weights"),
            "{err}"
        );
        let err = file
            .conv_bn("t", 1, 1, 2, 3, Activation::Relu6)
            .unwrap_err();
        assert!(
            matches!(&err, DetectorError::MissingTensor { name, .. } if name == "t/weights"),
            "{err}"
        );
        assert!(WeightFile::parse(Path::new("x"), b"not safetensors").is_err());
    }
}
