//! Synchronous model loading on a [`crate::blocking::Hub`]: each call blocks until done.

use std::path::PathBuf;

use super::{BundleOptions, LoadOptions, ModelBundle, ModelError, ModelSource, Tolerate, Weights, WeightsOptions};
use crate::repo::CommitHash;

/// A [`super::ModelLoader`] driven by a blocking hub's runtime.
pub struct ModelLoader<'h> {
    hub: &'h crate::blocking::Hub,
    inner: super::ModelLoader,
}

impl std::fmt::Debug for ModelLoader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<'h> ModelLoader<'h> {
    /// A loader for `source` with `options`, downloading through `hub`.
    pub fn new(hub: &'h crate::blocking::Hub, source: ModelSource, options: LoadOptions) -> Self {
        ModelLoader {
            hub,
            inner: super::ModelLoader::new(hub.inner().clone(), source, options),
        }
    }

    /// The async loader underneath.
    pub fn inner(&self) -> &super::ModelLoader {
        &self.inner
    }

    /// See [`super::ModelLoader::pin`].
    pub fn pin(&mut self) -> Option<CommitHash> {
        self.hub.block_on(self.inner.pin())
    }

    /// See [`super::ModelLoader::cached_file`].
    pub fn cached_file(&self, name: &str, tolerate: Tolerate) -> Result<Option<PathBuf>, ModelError> {
        self.hub.block_on(self.inner.cached_file(name, tolerate))
    }

    /// See [`super::ModelLoader::cached_files`].
    pub fn cached_files<S: AsRef<str>>(
        &self,
        names: &[S],
        tolerate: Tolerate,
    ) -> Result<Vec<Option<PathBuf>>, ModelError> {
        self.hub.block_on(self.inner.cached_files(names, tolerate))
    }

    /// See [`super::ModelLoader::has_file`].
    pub fn has_file(&self, name: &str) -> Result<bool, ModelError> {
        self.hub.block_on(self.inner.has_file(name))
    }

    /// See [`super::ModelLoader::weights`].
    pub fn weights(&self, opts: &WeightsOptions) -> Result<Weights, ModelError> {
        self.hub.block_on(self.inner.weights(opts))
    }

    /// See [`super::ModelLoader::bundle`].
    pub fn bundle(&mut self, opts: &BundleOptions) -> Result<ModelBundle, ModelError> {
        self.hub.block_on(self.inner.bundle(opts))
    }
}
