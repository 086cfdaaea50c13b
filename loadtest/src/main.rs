//! rtmp-load: the bundled load generator (built in issue 4).
fn main() {
    eprintln!("rtmp-load: not built yet");
    std::process::exit(2);
}
