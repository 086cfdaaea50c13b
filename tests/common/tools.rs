//! Real tools the interop tests drive: lookups that fail (never skip) when a tool is missing,
//! and per-test scratch directories.

use std::path::PathBuf;
use std::process::Command;

/// The path of `name` on PATH; fails the test when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "missing tool `{name}`: run tools/test.sh as root to install the test tools"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The recent static ffmpeg of the imageio-ffmpeg wheel: it muxes and demuxes Enhanced RTMP
/// (HEVC, AV1 in FLV), which the distribution's ffmpeg 5 does not.
pub fn modern_ffmpeg() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "missing imageio-ffmpeg: run tools/test.sh (pip install imageio-ffmpeg)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A scratch directory for one test, removed when the test passes (kept for a look when it
/// fails).
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rtmp-edge-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
