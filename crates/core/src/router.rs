//! Routing a full request path to a mounted backend and its storage view.
//!
//! A [`Router`] is immutable: mount-table changes build a new one and swap it
//! in, so a request sees one consistent table from start to end.

use std::sync::Arc;

use arca_sdk::{Backend, Storage};

use crate::mounts::MountEntry;

pub struct Route {
    /// Full prefix with trailing slash: `secret/`, `sys/`, `auth/token/`.
    pub full_path: String,
    pub entry: MountEntry,
    pub auth: bool,
    pub backend: Arc<dyn Backend>,
    pub storage: Arc<dyn Storage>,
    /// The backend's special paths, compiled once when the route is built.
    pub special: arca_sdk::framework::SpecialMatchers,
}

#[derive(Default)]
pub struct Router {
    /// Sorted by prefix length, longest first.
    routes: Vec<Arc<Route>>,
}

impl Router {
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by(|a, b| {
            b.full_path
                .len()
                .cmp(&a.full_path.len())
                .then(a.full_path.cmp(&b.full_path))
        });
        Router { routes }
    }

    /// The route for `path` and the path relative to it.
    pub fn resolve<'a>(&self, path: &'a str) -> Option<(Arc<Route>, &'a str)> {
        for r in &self.routes {
            if let Some(rest) = path.strip_prefix(r.full_path.as_str()) {
                return Some((r.clone(), rest));
            }
            if path.len() + 1 == r.full_path.len() && r.full_path.starts_with(path) {
                return Some((r.clone(), ""));
            }
        }
        None
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    pub fn by_uuid(&self, uuid: &str) -> Option<Arc<Route>> {
        self.routes.iter().find(|r| r.entry.uuid == uuid).cloned()
    }
}
