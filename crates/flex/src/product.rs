//! Matrix products of row-major f32 buffers through gemm, with operands given as strided views
//! (a matrix or its transpose) so that no transpose is ever copied.

use gemm::Parallelism;

/// A row-major matrix operand: the values, and the steps between rows and between columns.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    values: &'a [f32],
    row_step: usize,
    column_step: usize,
}

impl<'a> Operand<'a> {
    /// A row-major matrix with `columns` columns.
    pub fn rows(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_step: columns,
            column_step: 1,
        }
    }

    /// The transpose of a row-major matrix with `columns` columns.
    pub fn transposed(values: &'a [f32], columns: usize) -> Self {
        Self {
            values,
            row_step: 1,
            column_step: columns,
        }
    }

    /// A matrix whose rows start `row_step` values apart and whose columns lie `column_step`
    /// apart (one slice of a larger layout, or a transpose).
    pub fn strided(values: &'a [f32], row_step: usize, column_step: usize) -> Self {
        Self {
            values,
            row_step,
            column_step,
        }
    }

    fn covers(&self, rows: usize, columns: usize) -> bool {
        (rows - 1) * self.row_step + (columns - 1) * self.column_step < self.values.len()
    }
}

/// `out [m, n] (+)= lhs [m, k] × rhs [k, n]`, `out` row-major; adds when `accumulate`.
pub fn matmul(
    out: &mut [f32],
    [m, n, k]: [usize; 3],
    lhs: Operand,
    rhs: Operand,
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(m > 0 && n > 0 && k > 0 && out.len() >= m * n);
    assert!(lhs.covers(m, k) && rhs.covers(k, n));
    // SAFETY: the assertions keep every index gemm computes from these sizes and steps inside
    // the three slices, and `out` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.column_step as isize,
            lhs.row_step as isize,
            rhs.values.as_ptr(),
            rhs.column_step as isize,
            rhs.row_step as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// With fewer tasks (images) than threads, each product uses the threads; otherwise the tasks do.
pub fn product_parallelism(tasks: usize) -> Parallelism {
    match tasks < rayon::current_num_threads() {
        true => Parallelism::Rayon(0),
        false => Parallelism::None,
    }
}
