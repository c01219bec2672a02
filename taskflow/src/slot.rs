//! The slots of a flow's generated values struct: one per value of the flow, empty until the
//! input or step that provides it is there.
//!
//! A `Slot<T>` holds its value; a `Shared<T>` holds it behind an `Arc`, because some step reads
//! it by reference and the parallel engine's step futures are `'static`: each owns a handle
//! (`arc`), while the serial engine borrows the value (`get`). Both have the same methods where
//! they mean the same thing, so generated code reads a value the same way whichever it is.
//!
//! The static order guarantees that a slot is set before it is read and that no step holds a
//! handle when the run ends; a slot read empty is a bug in taskflow (`missing`).

use std::sync::Arc;

use serde_json::Value;

use crate::__private::{in_field, json_field, StorableIn};
use crate::durable::ValueError;

/// A value of the flow, stored as it is.
pub struct Slot<T>(Option<T>);

/// A value of the flow that steps borrow while other steps run: stored behind an `Arc`.
pub struct Shared<T>(Option<Arc<T>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(None)
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(None)
    }
}

/// The methods that read the same on both kinds of slot, written once (`get`, `set`, `take`
/// and the `_opt` forms are each kind's own).
macro_rules! end_and_load {
    () => {
        #[inline(always)]
        pub fn cloned(&self) -> T
        where
            T: Clone,
        {
            self.get().clone()
        }

        /// An output of the run at its end: taken out, or a copy (`copy`: the run keeps its own).
        #[inline]
        pub fn output(&mut self, copy: bool) -> T
        where
            T: Clone,
        {
            if copy {
                self.cloned()
            } else {
                self.take()
            }
        }

        /// An output a decider may have skipped (see [`output`](Self::output)).
        #[inline]
        pub fn output_opt(&mut self, copy: bool) -> Option<T>
        where
            T: Clone,
        {
            if copy {
                self.cloned_opt()
            } else {
                self.take_opt()
            }
        }

        /// Sets the value from its JSON.
        pub fn load<'d>(&mut self, json: &Value) -> Result<(), ValueError>
        where
            T: StorableIn<'d>,
        {
            self.set(T::load(json)?);
            Ok(())
        }

        /// Sets the value from field `name` of a JSON object (one of a step's several outputs).
        pub fn load_field<'d>(&mut self, json: &Value, name: &str) -> Result<(), ValueError>
        where
            T: StorableIn<'d>,
        {
            self.set(in_field(name, T::load(json_field(json, name)?))?);
            Ok(())
        }
    };
}

impl<T> Slot<T> {
    pub fn new(value: T) -> Self {
        Slot(Some(value))
    }

    #[inline(always)]
    pub fn get(&self) -> &T {
        match &self.0 {
            Some(value) => value,
            None => missing(),
        }
    }

    /// The value of a slot its producer may have skipped (a decider said no).
    #[inline(always)]
    pub fn opt(&self) -> Option<&T> {
        self.0.as_ref()
    }

    #[inline(always)]
    pub fn set(&mut self, value: T) {
        self.0 = Some(value);
    }

    /// Moves the value out: its only reader takes it, or the run ends.
    #[inline(always)]
    pub fn take(&mut self) -> T {
        match self.0.take() {
            Some(value) => value,
            None => missing(),
        }
    }

    #[inline(always)]
    pub fn take_opt(&mut self) -> Option<T> {
        self.0.take()
    }

    #[inline(always)]
    pub fn cloned_opt(&self) -> Option<T>
    where
        T: Clone,
    {
        self.0.clone()
    }

    end_and_load!();
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Self {
        Shared(Some(Arc::new(value)))
    }

    #[inline(always)]
    pub fn get(&self) -> &T {
        match &self.0 {
            Some(value) => value,
            None => missing(),
        }
    }

    #[inline(always)]
    pub fn opt(&self) -> Option<&T> {
        self.0.as_deref()
    }

    /// A handle on the value, for a step's future or a revert to own.
    #[inline(always)]
    pub fn arc(&self) -> Arc<T> {
        match &self.0 {
            Some(value) => Arc::clone(value),
            None => missing(),
        }
    }

    #[inline(always)]
    pub fn opt_arc(&self) -> Option<Arc<T>> {
        self.0.clone()
    }

    #[inline(always)]
    pub fn set(&mut self, value: T) {
        self.0 = Some(Arc::new(value));
    }

    /// The value itself, once no step holds a handle on it (the end of a run).
    #[inline(always)]
    pub fn take(&mut self) -> T {
        match self.0.take().and_then(Arc::into_inner) {
            Some(value) => value,
            None => missing(),
        }
    }

    #[inline(always)]
    pub fn take_opt(&mut self) -> Option<T> {
        self.0.take().map(|value| match Arc::into_inner(value) {
            Some(value) => value,
            None => missing(),
        })
    }

    #[inline(always)]
    pub fn cloned_opt(&self) -> Option<T>
    where
        T: Clone,
    {
        self.opt().cloned()
    }

    end_and_load!();
}

#[cold]
#[inline(never)]
fn missing() -> ! {
    panic!("taskflow internal error: a slot was read before it was set or while still shared; please report it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_value_comes_back_once_no_handle_is_left() {
        let mut slot = Shared::new(String::from("srv-42"));
        let handle = slot.arc();
        assert_eq!(*handle, "srv-42");
        drop(handle);
        assert_eq!(slot.take(), "srv-42");
        assert!(slot.opt().is_none());
    }

    #[test]
    #[should_panic(expected = "a slot was read before it was set")]
    fn reading_an_empty_slot_is_an_internal_error() {
        Slot::<u32>::default().get();
    }

    #[test]
    fn several_outputs_load_by_field_and_name_the_field_that_does_not_load() {
        let json = serde_json::json!({ "a": 1, "b": "two" });
        let mut a = Slot::<u32>::default();
        a.load_field(&json, "a").unwrap();
        assert_eq!(*a.get(), 1);
        let mut b = Shared::<u32>::default();
        let e = b.load_field(&json, "b").unwrap_err();
        assert!(e.to_string().contains('b'), "{e}");
    }
}
