//! `Engine::screenshot`: a VM's screen.

use super::{Engine, EngineError};
use crate::backend::{Backend, BackendError, RunState, ScreenProblem};
use crate::screen::Image;
use crate::topology::model::NodeKind;

impl<B: Backend> Engine<B> {
    /// The screen of `node` of `lab`, a running VM with `display: true`;
    /// [`Image::to_png`] makes a PNG file of it. It comes through the
    /// backend's connection, so a libvirt on another machine works as a
    /// local one does.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotFound`] when the lab has no such node;
    /// [`BackendError::NoScreen`] when it is a container, a VM without a
    /// display or a VM that is not running, each with the fix in its help.
    pub async fn screenshot(&self, lab: &str, node: &str) -> Result<Image, EngineError> {
        let found = self.observed_node(lab, node).await?;
        let problem = match (&found.kind, &found.state) {
            (NodeKind::Container, _) => Some(ScreenProblem::NotAVm),
            (NodeKind::Vm, RunState::Running) => None,
            (NodeKind::Vm, _) => Some(ScreenProblem::NotRunning),
        };
        if let Some(problem) = problem {
            return Err(BackendError::NoScreen {
                node: node.to_string(),
                problem,
            }
            .into());
        }
        Ok(self.backend.screenshot(&found.id).await?)
    }
}
