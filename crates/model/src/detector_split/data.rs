//! The real frames the split codec is trained and measured on, and their split.
//!
//! Train: the first 70 % of `frames/vtest-every2` (every 2nd frame of the pedestrian video
//! vtest.avi, 10 fps) and the opencv-doc photos. Held out: the video's last 30 % after a gap of
//! 5 extracted frames (1 s of video, so no held-out frame is a near copy of a training frame),
//! the scikit-image photos and the darknet photos. All paths are relative to
//! [`crate::tf_import::detector_cache_dir`] (installed by `scripts/install-detector.sh`).

use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// Folder of every 2nd video frame, relative to the detector cache.
pub const VIDEO_FRAMES_DIR: &str = "frames/vtest-every2";
/// Fraction of the video frames (in time order) used for training.
pub const TRAIN_FRACTION: f64 = 0.7;
/// Extracted frames skipped between the training and the held-out part of the video.
pub const GAP_FRAMES: usize = 5;
/// Photo folders used for training.
pub const TRAIN_PHOTOS: [&str; 1] = ["photos/opencv"];
/// Photo folders held out.
pub const HELD_OUT_PHOTOS: [&str; 2] = ["photos/skimage", "photos/darknet"];
/// Largest image side accepted (bounds the decoded allocation).
pub const MAX_SIDE: u32 = 8192;

/// Which part of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSplit {
    /// Training frames and photos.
    Train,
    /// Held-out frames and photos.
    HeldOut,
}

/// One decoded image: interleaved RGB bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Path relative to the detector cache (its name in reports).
    pub name: String,
    /// RGB bytes, row-major.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let io = |source| ModelError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The image files of `split` under `cache` (the detector cache), video frames first in time
/// order, then photos sorted by path.
pub fn frame_paths(cache: &Path, split: FrameSplit) -> Result<Vec<PathBuf>, ModelError> {
    let video = images_in(&cache.join(VIDEO_FRAMES_DIR))?;
    if video.is_empty() {
        return Err(ModelError::Frame(format!(
            "no frames in {} (run scripts/install-detector.sh)",
            cache.join(VIDEO_FRAMES_DIR).display()
        )));
    }
    let n_train = (video.len() as f64 * TRAIN_FRACTION).round() as usize;
    let (mut out, photos): (Vec<PathBuf>, &[&str]) = match split {
        FrameSplit::Train => (video[..n_train].to_vec(), &TRAIN_PHOTOS),
        FrameSplit::HeldOut => (
            video[(n_train + GAP_FRAMES).min(video.len())..].to_vec(),
            &HELD_OUT_PHOTOS,
        ),
    };
    for dir in photos {
        out.extend(images_in(&cache.join(dir))?);
    }
    Ok(out)
}

/// Decodes one image file to RGB (grey and alpha images converted; 16-bit scaled to 8 bits).
pub fn load_frame(cache: &Path, path: &Path) -> Result<Frame, ModelError> {
    let bad = |message: String| ModelError::Frame(format!("{}: {message}", path.display()));
    let reader = image::ImageReader::open(path)
        .map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?
        .with_guessed_format()
        .map_err(|source| ModelError::Io {
            path: path.to_owned(),
            source,
        })?;
    let (w, h) = reader.into_dimensions().map_err(|e| bad(e.to_string()))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad(format!("{w}×{h} is outside 1..={MAX_SIDE} per side")));
    }
    let img = image::open(path).map_err(|e| bad(e.to_string()))?.to_rgb8();
    let name = path
        .strip_prefix(cache)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    Ok(Frame {
        name,
        width: img.width() as usize,
        height: img.height() as usize,
        rgb: img.into_raw(),
    })
}

/// Decodes every image of `split`.
pub fn load_split(cache: &Path, split: FrameSplit) -> Result<Vec<Frame>, ModelError> {
    frame_paths(cache, split)?
        .iter()
        .map(|p| load_frame(cache, p))
        .collect()
}
