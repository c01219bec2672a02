//! Stored values to and from JSON. Every value a durable run keeps (the inputs, each step's
//! outputs) passes through [`save`] and [`load`] (generated code reaches them through
//! `StorableIn`), which turn everything that can go wrong with the value itself into a
//! [`ValueError`]: an error of its `Serialize` or `Deserialize`, or a panic in either.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::ser::Serialize;
use serde_json::Value;

use crate::failure::panic_message;

/// Why a value of a durable run could not be stored, or a stored one not loaded back.
///
/// A step whose outputs cannot be stored fails with this error (find it with
/// [`Failure::downcast_ref`](crate::Failure::downcast_ref)); inputs that cannot be stored, or a
/// stored value that does not load, are a [`StoreError`](crate::store::StoreError) whose detail is
/// this error's text. The text names the field first when the value is one of several (an input,
/// or one of a step's outputs: `` `ratio`: ... ``).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::store::{MemoryStore, StoreError};
/// use taskflow::DurableError;
///
/// #[task(provides = doubled)]
/// fn double(pairs: HashMap<(u8, u8), u8>) -> usize { pairs.len() * 2 }
///
/// flow! { flow Double(pairs: HashMap<(u8, u8), u8>) -> (doubled) { linear [ double ] } }
///
/// fn main() {
///     let store = Arc::new(MemoryStore::new());
///     let inputs = DoubleInputs { pairs: HashMap::from([((1, 2), 3)]) };
///     // JSON object keys are strings: the inputs cannot be stored, and nothing is.
///     let err = Engine::serial().run_durable_blocking(Double, inputs, store, "d").unwrap_err();
///     assert!(matches!(err, DurableError::Store(StoreError::Invalid { .. })));
///     assert_eq!(
///         err.to_string(),
///         "store error: invalid inputs of flow `d`: `pairs`: key must be a string"
///     );
///     let why = taskflow::ValueError::Serialize("key must be a string".into());
///     assert_eq!(why.to_string(), "key must be a string");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value's `Serialize` failed (serde's message): a map whose keys are not strings, say.
    #[error("{0}")]
    Serialize(String),
    /// The stored JSON does not load as the type (serde's message), or lacks a field.
    #[error("{0}")]
    Deserialize(String),
    /// The value's `Serialize`, or the type's `Deserialize`, panicked: which, and the panic's
    /// message.
    #[error("{0}")]
    Panicked(String),
}

impl ValueError {
    /// The same error, about field `field` of the value.
    pub(crate) fn in_field(self, field: &str) -> Self {
        let prefix = |detail: String| format!("`{field}`: {detail}");
        match self {
            ValueError::Serialize(d) => ValueError::Serialize(prefix(d)),
            ValueError::Deserialize(d) => ValueError::Deserialize(prefix(d)),
            ValueError::Panicked(d) => ValueError::Panicked(prefix(d)),
        }
    }
}

/// `value` as JSON; a panic in its `Serialize` is an error too.
pub(crate) fn save<T: Serialize + DeserializeOwned>(value: &T) -> Result<Value, ValueError> {
    match catch_unwind(AssertUnwindSafe(|| serde_json::to_value(value))) {
        Ok(Ok(json)) => Ok(json),
        Ok(Err(e)) => Err(ValueError::Serialize(e.to_string())),
        Err(payload) => Err(ValueError::Panicked(format!(
            "its `Serialize` panicked: {}",
            panic_message(&*payload)
        ))),
    }
}

/// A stored value back from its JSON; a panic in `Deserialize` is an error too.
pub(crate) fn load<T: DeserializeOwned>(json: &Value) -> Result<T, ValueError> {
    match catch_unwind(AssertUnwindSafe(|| T::deserialize(json))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ValueError::Deserialize(e.to_string())),
        Err(payload) => Err(ValueError::Panicked(format!(
            "its `Deserialize` panicked: {}",
            panic_message(&*payload)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serializer;
    use std::collections::HashMap;

    #[test]
    fn values_are_saved_as_serde_json_writes_them() {
        let value = (vec![Some(1.5f64), None], "text".to_owned(), u64::MAX);
        assert_eq!(save(&value).unwrap(), serde_json::to_value(&value).unwrap());
        assert_eq!(
            load::<(Vec<Option<f64>>, String, u64)>(&save(&value).unwrap()),
            Ok(value)
        );
    }

    #[test]
    fn a_serialize_error_is_an_error() {
        let keys = HashMap::from([((1u8, 2u8), 3u8)]);
        assert_eq!(
            save(&keys),
            Err(ValueError::Serialize("key must be a string".into()))
        );
    }

    /// Panics while serializing `true` or loading `false`.
    #[derive(Debug)]
    struct Grumpy(bool);
    impl Serialize for Grumpy {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            assert!(!self.0, "grumpy today");
            s.serialize_bool(self.0)
        }
    }
    impl<'de> serde::Deserialize<'de> for Grumpy {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            assert!(bool::deserialize(d)?, "grumpy on load");
            Ok(Grumpy(true))
        }
    }

    #[test]
    fn a_panic_in_serialize_or_deserialize_is_an_error() {
        assert_eq!(
            save(&Grumpy(true)).unwrap_err(),
            ValueError::Panicked("its `Serialize` panicked: grumpy today".into())
        );
        assert_eq!(
            load::<Grumpy>(&Value::Bool(false)).unwrap_err(),
            ValueError::Panicked("its `Deserialize` panicked: grumpy on load".into())
        );
        assert_eq!(
            load::<u8>(&Value::Bool(false))
                .unwrap_err()
                .in_field("n")
                .to_string(),
            "`n`: invalid type: boolean `false`, expected u8"
        );
    }
}
