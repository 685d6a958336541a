//! `Cell`: where a gauge's or sharded counter's atomics live. Without the
//! `shared` feature it is an `Arc` of them, as it always was. With it, a
//! pointer the handle reads directly plus an owner that keeps the memory
//! alive: the handle's own heap allocation, or the memory-mapped file of
//! a worker's slot (`shared/`). Recording stays one atomic on the
//! pointed-to value either way; the pointer load replaces the `Arc`'s.

use std::ops::Deref;
use std::sync::Arc;

/// Anything that may keep memory alive for a cell, shared across threads.
#[cfg(feature = "shared")]
pub(crate) trait Owner: Send + Sync {}
#[cfg(feature = "shared")]
impl<T: ?Sized + Send + Sync> Owner for T {}

/// A metric's atomic value(s): on the heap, or in a shared region.
#[cfg(not(feature = "shared"))]
pub(crate) struct Cell<T: ?Sized>(Arc<T>);

#[cfg(not(feature = "shared"))]
impl<T: Send + Sync> Cell<T> {
    pub(crate) fn new(value: T) -> Self {
        Cell(Arc::new(value))
    }
}

#[cfg(not(feature = "shared"))]
impl<T: Send + Sync> Cell<[T]> {
    pub(crate) fn from_vec(values: Vec<T>) -> Self {
        Cell(values.into())
    }
}

#[cfg(not(feature = "shared"))]
impl<T: ?Sized> Deref for Cell<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(not(feature = "shared"))]
impl<T: ?Sized> Clone for Cell<T> {
    fn clone(&self) -> Self {
        Cell(self.0.clone())
    }
}

/// A metric's atomic value(s): on the heap, or in a shared region.
#[cfg(feature = "shared")]
pub(crate) struct Cell<T: ?Sized + 'static> {
    ptr: std::ptr::NonNull<T>,
    _owner: Arc<dyn Owner>,
}

// SAFETY: the cell only hands out `&T`; `T` is atomics (`Sync`), and the
// owner keeps the memory alive on any thread.
#[cfg(feature = "shared")]
unsafe impl<T: ?Sized + Sync> Send for Cell<T> {}
// SAFETY: as above.
#[cfg(feature = "shared")]
unsafe impl<T: ?Sized + Sync> Sync for Cell<T> {}

#[cfg(feature = "shared")]
impl<T: Send + Sync + 'static> Cell<T> {
    pub(crate) fn new(value: T) -> Self {
        let owner = Arc::new(value);
        Cell {
            ptr: std::ptr::NonNull::from(&*owner),
            _owner: owner,
        }
    }
}

#[cfg(feature = "shared")]
impl<T: Send + Sync + 'static> Cell<[T]> {
    pub(crate) fn from_vec(values: Vec<T>) -> Self {
        let owner = Arc::new(values.into_boxed_slice());
        Cell {
            ptr: std::ptr::NonNull::from(&**owner),
            _owner: owner,
        }
    }
}

#[cfg(feature = "shared")]
impl<T: ?Sized + 'static> Cell<T> {
    /// A cell at `ptr`, which stays valid while `owner` lives.
    ///
    /// # Safety
    /// `ptr` must point at a properly aligned, initialised `T` that lives
    /// as long as `owner` and is only accessed through atomics.
    pub(crate) unsafe fn shared(ptr: std::ptr::NonNull<T>, owner: Arc<dyn Owner>) -> Self {
        Cell { ptr, _owner: owner }
    }
}

#[cfg(feature = "shared")]
impl<T: ?Sized> Deref for Cell<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is valid while `_owner` lives (see `new`/`shared`).
        unsafe { self.ptr.as_ref() }
    }
}

#[cfg(feature = "shared")]
impl<T: ?Sized> Clone for Cell<T> {
    fn clone(&self) -> Self {
        Cell {
            ptr: self.ptr,
            _owner: self._owner.clone(),
        }
    }
}
