//! The crate's one dense matrix product: a checked, safe wrapper over the `gemm` crate, shared
//! by the training convolutions and the detector's inference kernels.

/// A row-major matrix operand of [`matmul`], read as stored or transposed (the stored matrix
/// is then columns × rows of the logical one).
pub(crate) struct Operand<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) transposed: bool,
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, overwriting `dst`, on `threads` threads of the
/// current rayon pool (1: on this thread).
///
/// # Panics
/// When an operand's length is not its shape's: a caller's bug, never input data.
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    lhs: Operand,
    rhs: Operand,
    dst: &mut [f32],
    threads: usize,
) {
    assert_eq!(dst.len(), m * n, "matmul: destination is not {m}×{n}");
    assert_eq!(lhs.data.len(), m * k, "matmul: lhs is not {m}×{k}");
    assert_eq!(rhs.data.len(), k * n, "matmul: rhs is not {k}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // (row stride, column stride) of each operand as stored.
    let (lhs_rs, lhs_cs) = if lhs.transposed { (1, m) } else { (k, 1) };
    let (rhs_rs, rhs_cs) = if rhs.transposed { (1, k) } else { (n, 1) };
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above give every operand its full extent under the strides chosen;
    // with read_dst false the old contents of `dst` are never read.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.data.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
