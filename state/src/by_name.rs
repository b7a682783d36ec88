//! Records per (namespace, name), found by borrowed names: the hot path
//! reaches an account's or a client's record without building a
//! `namespace/name` key string for each lookup. Strings are made only when
//! a record is first created.

use std::hash::RandomState;

use hashbrown::HashMap;

type Map<V> = HashMap<String, V, RandomState>;

/// A map from (namespace, name) to `V`.
pub(crate) struct ByName<V> {
    spaces: Map<Map<V>>,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        Self {
            spaces: Map::default(),
        }
    }
}

impl<V> ByName<V> {
    /// The record of `name` in `ns`, if there is one.
    pub(crate) fn get(&self, ns: &str, name: &str) -> Option<&V> {
        self.spaces.get(ns)?.get(name)
    }

    /// The record of `name` in `ns`, to change, if there is one.
    pub(crate) fn get_mut(&mut self, ns: &str, name: &str) -> Option<&mut V> {
        self.spaces.get_mut(ns)?.get_mut(name)
    }

    /// The record of `name` in `ns`, made empty first when there is none.
    pub(crate) fn get_or_default(&mut self, ns: &str, name: &str) -> &mut V
    where
        V: Default,
    {
        self.spaces
            .entry_ref(ns)
            .or_default()
            .entry_ref(name)
            .or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::ByName;

    #[test]
    fn names_are_kept_apart_per_namespace() {
        let mut map: ByName<u32> = ByName::default();
        *map.get_or_default("team-a", "acct") += 1;
        *map.get_or_default("team-a", "acct") += 1;
        *map.get_or_default("team-b", "acct") += 5;
        assert_eq!(map.get("team-a", "acct"), Some(&2));
        assert_eq!(map.get("team-b", "acct"), Some(&5));
        assert_eq!(map.get("team-a", "other"), None);
        assert_eq!(map.get("team-c", "acct"), None);
        // "a/b" + "c" and "a" + "b/c" would share a joined key; here they do not
        *map.get_or_default("a/b", "c") += 1;
        assert_eq!(map.get("a", "b/c"), None);
        if let Some(v) = map.get_mut("team-b", "acct") {
            *v = 0;
        }
        assert_eq!(map.get("team-b", "acct"), Some(&0));
    }
}
