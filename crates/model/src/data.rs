//! Fashion-MNIST in its original gzipped IDX files (as Debian's `dataset-fashion-mnist` installs them).
//!
//! The reader checks the magic number, the dimensions and the payload length before it allocates,
//! so a corrupt or hostile file yields a [`DataError`] naming the file, never a panic or a huge
//! allocation.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Where `scripts/install-fashion-mnist.sh` (Debian's `dataset-fashion-mnist`) puts the files.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Image side in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Class names, in label order.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// IDX magic of an unsigned-byte 3-D array (images).
const MAGIC_IMAGES: u32 = 0x0000_0803;
/// IDX magic of an unsigned-byte 1-D array (labels).
const MAGIC_LABELS: u32 = 0x0000_0801;
/// Largest item count accepted: bounds the allocation a header can ask for.
const MAX_ITEMS: usize = 1_000_000;

/// Why a Fashion-MNIST file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (missing files: run scripts/install-fashion-mnist.sh).
    #[error("{path}: {source} (install with scripts/install-fashion-mnist.sh)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the expected IDX magic number.
    #[error("{path}: bad IDX magic {found:#010x}, expected {expected:#010x}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic read.
        found: u32,
        /// The magic this kind of file must have.
        expected: u32,
    },
    /// The file ends before the header or the payload is complete, or has bytes after it.
    #[error("{path}: payload is {found} bytes after the header, the header announces {expected}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: usize,
        /// Bytes present (capped at `expected + 1`).
        found: usize,
    },
    /// The dimensions in the header are not the ones expected (or images and labels disagree).
    #[error("{path}: {what}")]
    Dims {
        /// The file.
        path: PathBuf,
        /// What does not match.
        what: String,
    },
}

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60 000 training images.
    Train,
    /// The 10 000 test images.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Labelled 28×28 grey images, pixels row-major, one byte each.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `len() * 784` pixel bytes.
    pub pixels: Vec<u8>,
    /// One label in `0..10` per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Loads one split from `dir` (`{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let images_path = dir.join(format!("{}-images-idx3-ubyte.gz", split.prefix()));
        let labels_path = dir.join(format!("{}-labels-idx1-ubyte.gz", split.prefix()));
        let (count, pixels) = read_images(&images_path)?;
        let labels = read_labels(&labels_path)?;
        if labels.len() != count {
            return Err(DataError::Dims {
                path: labels_path,
                what: format!("{} labels for {count} images", labels.len()),
            });
        }
        if let Some(bad) = labels.iter().position(|&l| usize::from(l) >= NUM_CLASSES) {
            return Err(DataError::Dims {
                path: labels_path,
                what: format!("label {} at index {bad} is not a class", labels[bad]),
            });
        }
        Ok(Self { pixels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixel bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = IMAGE_SIDE * IMAGE_SIDE;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `n` images (or all), for quick evaluations.
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            pixels: self.pixels[..n * IMAGE_SIDE * IMAGE_SIDE].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// Reads a gzipped IDX image file: returns the image count and the pixels.
pub fn read_images(path: &Path) -> Result<(usize, Vec<u8>), DataError> {
    let mut reader = open(path)?;
    let header = read_header(&mut reader, path, MAGIC_IMAGES, 3)?;
    let (count, rows, cols) = (header[0], header[1], header[2]);
    if rows != IMAGE_SIDE || cols != IMAGE_SIDE {
        return Err(DataError::Dims {
            path: path.to_owned(),
            what: format!("images are {rows}×{cols}, expected {IMAGE_SIDE}×{IMAGE_SIDE}"),
        });
    }
    let pixels = read_payload(&mut reader, path, count * rows * cols)?;
    Ok((count, pixels))
}

/// Reads a gzipped IDX label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut reader = open(path)?;
    let header = read_header(&mut reader, path, MAGIC_LABELS, 1)?;
    read_payload(&mut reader, path, header[0])
}

fn open(path: &Path) -> Result<GzDecoder<BufReader<File>>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(GzDecoder::new(BufReader::new(file)))
}

fn read_u32(reader: &mut impl Read, path: &Path, header_len: usize) -> Result<u32, DataError> {
    let mut word = [0u8; 4];
    reader.read_exact(&mut word).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            DataError::Truncated {
                path: path.to_owned(),
                expected: header_len,
                found: 0,
            }
        } else {
            DataError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    Ok(u32::from_be_bytes(word))
}

fn read_header(
    reader: &mut impl Read,
    path: &Path,
    magic: u32,
    ndims: usize,
) -> Result<Vec<usize>, DataError> {
    let header_len = 4 * (1 + ndims);
    let found = read_u32(reader, path, header_len)?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_owned(),
            found,
            expected: magic,
        });
    }
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        dims.push(read_u32(reader, path, header_len)? as usize);
    }
    if dims[0] == 0 || dims[0] > MAX_ITEMS {
        return Err(DataError::Dims {
            path: path.to_owned(),
            what: format!("{} items, expected 1..={MAX_ITEMS}", dims[0]),
        });
    }
    Ok(dims)
}

/// Reads exactly `expected` bytes and checks that nothing follows; `expected` is already bounded
/// by [`MAX_ITEMS`] and the fixed image size.
fn read_payload(
    reader: &mut impl Read,
    path: &Path,
    expected: usize,
) -> Result<Vec<u8>, DataError> {
    let mut payload = Vec::with_capacity(expected);
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
    if payload.len() != expected {
        return Err(DataError::Truncated {
            path: path.to_owned(),
            expected,
            found: payload.len(),
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn real_dir() -> PathBuf {
        PathBuf::from(DEFAULT_FASHION_MNIST_DIR)
    }

    fn write_gz(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut enc = GzEncoder::new(File::create(&path).unwrap(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
        path
    }

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn reads_the_real_test_split() {
        let test = Dataset::load(&real_dir(), Split::Test).unwrap();
        assert_eq!(test.len(), 10_000);
        assert_eq!(test.pixels.len(), 10_000 * 784);
        // The classes of Fashion-MNIST's test split are balanced: 1000 each.
        let mut counts = [0usize; NUM_CLASSES];
        for &l in &test.labels {
            counts[usize::from(l)] += 1;
        }
        assert_eq!(counts, [1000; NUM_CLASSES]);
        // Real images are not blank.
        assert!(test.image(0).iter().any(|&p| p > 100));
    }

    #[test]
    fn reads_the_real_train_labels() {
        let labels = read_labels(&real_dir().join("train-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(labels.len(), 60_000);
    }

    #[test]
    fn rejects_bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_gz(dir.path(), "x.gz", &header(0x0803_0000, &[1, 28, 28]));
        assert!(matches!(
            read_images(&path),
            Err(DataError::BadMagic {
                found: 0x0803_0000,
                ..
            })
        ));
        // A label file is not an image file.
        let path = write_gz(dir.path(), "y.gz", &header(MAGIC_LABELS, &[1]));
        assert!(matches!(
            read_images(&path),
            Err(DataError::BadMagic { .. })
        ));
    }

    #[test]
    fn rejects_truncated_payload_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = header(MAGIC_IMAGES, &[2, 28, 28]);
        bytes.extend(std::iter::repeat_n(7u8, 784 + 100));
        let path = write_gz(dir.path(), "t.gz", &bytes);
        match read_images(&path) {
            Err(DataError::Truncated {
                expected, found, ..
            }) => {
                assert_eq!((expected, found), (2 * 784, 884));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        let path = write_gz(dir.path(), "h.gz", &MAGIC_IMAGES.to_be_bytes()[..3]);
        assert!(matches!(
            read_images(&path),
            Err(DataError::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_trailing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = header(MAGIC_LABELS, &[3]);
        bytes.extend([1, 2, 3, 4]);
        let path = write_gz(dir.path(), "l.gz", &bytes);
        assert!(matches!(
            read_labels(&path),
            Err(DataError::Truncated {
                expected: 3,
                found: 4,
                ..
            })
        ));
    }

    #[test]
    fn rejects_wrong_dims_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_gz(dir.path(), "d.gz", &header(MAGIC_IMAGES, &[1, 32, 32]));
        assert!(matches!(read_images(&path), Err(DataError::Dims { .. })));
        // A header announcing 4 billion images is refused before any allocation.
        let path = write_gz(
            dir.path(),
            "big.gz",
            &header(MAGIC_IMAGES, &[u32::MAX, 28, 28]),
        );
        assert!(matches!(read_images(&path), Err(DataError::Dims { .. })));
    }

    #[test]
    fn rejects_non_gzip_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        std::fs::write(&path, header(MAGIC_LABELS, &[1])).unwrap();
        assert!(read_labels(&path).is_err());
        let err = read_labels(&dir.path().join("missing.gz")).unwrap_err();
        assert!(err.to_string().contains("missing.gz"));
    }
}
