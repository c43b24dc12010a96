//! Screenshots of VMs with a display, through libvirt's screenshot call.
//!
//! QEMU writes the screen into a stream that libvirt carries over its own
//! connection, so a daemon on another machine needs nothing more than a
//! local one: no file of the libvirt host is read, and no VNC port is
//! connected to.

use virt::stream::Stream;

use super::domains::find_domain;
use super::{LibvirtBackend, blocking, xml};
use crate::backend::{BackendError, ScreenProblem};
use crate::screen::Image;

/// The most bytes a screenshot may take: a PPM of the largest screen
/// accepted ([`crate::screen::MAX_PIXELS`], 3 bytes each) and its header.
const MAX_BYTES: usize = (crate::screen::MAX_PIXELS as usize) * 3 + 1024;

/// The screen of running VM `id`, decoded.
///
/// # Errors
///
/// [`BackendError::NoScreen`] when the VM is not running, has no display
/// or libvirt cannot take the screenshot; [`BackendError::NotFound`] when
/// it is gone.
pub(super) async fn screenshot(backend: &LibvirtBackend, id: &str) -> Result<Image, BackendError> {
    let conn = backend.conn.clone();
    let id = id.to_string();
    let (node, mime, bytes) = blocking(move || {
        let (domain, owner, xml) = find_domain(&conn, &id)?;
        let node = owner.name;
        let problem = |problem| BackendError::NoScreen {
            node: node.clone(),
            problem,
        };
        if !domain.is_active().unwrap_or(false) {
            return Err(problem(ScreenProblem::NotRunning));
        }
        if !xml::has_display(&xml) {
            return Err(problem(ScreenProblem::NoDisplay));
        }
        let failed = |what: &str, e: virt::error::Error| {
            problem(ScreenProblem::Failed(format!("{what}: {}", e.message())))
        };
        let stream = Stream::new(&conn, 0).map_err(|e| failed("open a stream", e))?;
        // Screen 0: the first head of the first video card.
        let mime = domain
            .screenshot(&stream, 0, 0)
            .map_err(|e| failed("take the screenshot", e))?;
        match read_all(&stream) {
            Ok(bytes) => {
                let _ = stream.finish();
                Ok((node, mime, bytes))
            }
            Err(why) => {
                let _ = stream.abort();
                Err(problem(ScreenProblem::Failed(why)))
            }
        }
    })
    .await?;
    Image::decode(&mime, &bytes).map_err(|e| BackendError::NoScreen {
        node,
        problem: ScreenProblem::Failed(e.to_string()),
    })
}

/// Everything the stream brings until its end, at most [`MAX_BYTES`].
fn read_all(stream: &Stream) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = stream
            .recv(&mut buf)
            .map_err(|e| format!("read the screenshot: {}", e.message()))?;
        let Ok(n) = usize::try_from(n) else {
            return Err(format!("read the screenshot: libvirt answered {n}"));
        };
        if n == 0 {
            return Ok(bytes);
        }
        if bytes.len() + n > MAX_BYTES {
            return Err(format!(
                "the screenshot is larger than the {MAX_BYTES} bytes accepted"
            ));
        }
        bytes.extend_from_slice(&buf[..n.min(buf.len())]);
    }
}
