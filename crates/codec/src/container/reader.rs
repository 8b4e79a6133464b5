//! A bounds-checked little-endian reader that reports the field and offset of every failure.

use crate::CodecError;

/// Reads fields off a byte slice; `base` is added to offsets in errors so that they count from
/// the start of the caller's buffer.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    /// Position from the start of the slice.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Absolute offset of the next byte, for error messages.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The whole slice.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Takes `n` bytes for `field`, or fails with [`CodecError::Truncated`].
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CodecError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(CodecError::Truncated {
                field,
                offset: self.offset(),
                needed: n,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Checks that `n` more bytes are present without consuming them.
    pub(crate) fn require(&self, n: usize, field: &'static str) -> Result<(), CodecError> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(CodecError::Truncated {
                field,
                offset: self.offset(),
                needed: n,
                available,
            });
        }
        Ok(())
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
}
