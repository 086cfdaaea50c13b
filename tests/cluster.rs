//! The cluster's stream directory as processes: a real `redis-server` started by the test on
//! a free loopback port, `rtmp-edge` origins that take a lease per stream published on them
//! (`[cluster] directory = "redis"`, `advertise`), and an edge that looks a stream up before
//! pulling it. Frames are compared bit for bit with the source. A missing tool is a
//! failure, never a skip: `tools/test.sh` installs redis-server and ffmpeg.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{
    assert_tail_of, ffmpeg_play, ffmpeg_publish, frame_md5s, h264_source, name_pulled_first_from,
    pull_from, watch, Proc, ServerProc, FPS,
};
use common::tools::{tool, Dir};
use common::{media, Client};
use rtmp_edge::rtmp::message::type_id;
use rtmp_edge::rtmp::session::ClientEvent;

/// Every bounded wait (a log line, a listener, a key).
const WAIT: Duration = Duration::from_secs(10);
/// Players end by themselves within this once their stream has ended.
const PLAYER_LIMIT: Duration = Duration::from_secs(15);

/// A port nobody listens on as the call returns (the OS picks it; taken by the caller next).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `redis-server` of the test's own: loopback only, nothing saved, stopped by PID.
struct Redis {
    proc: Proc,
    url: String,
}

impl Redis {
    fn start(dir: &Dir) -> Self {
        let port = free_port().to_string();
        let mut proc = Proc::spawn(
            "redis",
            dir,
            Command::new(tool("redis-server")).args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
        );
        proc.wait_for_output(&["Ready to accept connections"], 1, WAIT);
        Self {
            proc,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// The directory's entry for `live/NAME`.
    fn origin_of(&self, name: &str) -> Option<String> {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_connection_with_timeout(WAIT).unwrap();
        redis::cmd("GET")
            .arg(format!("rtmp-edge:stream:live/{name}"))
            .query(&mut conn)
            .unwrap()
    }

    /// Polls (bounded) until the directory's entry for `live/NAME` is `want`.
    fn wait_for_origin(&self, name: &str, want: Option<&str>) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.origin_of(name);
            if got.as_deref() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "directory entry of {name}: {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and waits (bounded) for it to exit.
    fn stop(&mut self) {
        self.proc.stop_after(Duration::ZERO, libc::SIGTERM);
    }
}

/// Workers not pinned (several processes share the cores), a short shutdown, the directory
/// in `redis`, then `rest`.
fn config(redis: &str, rest: &str) -> String {
    format!(
        "[workers]\npin = false\n\n[timeouts]\nshutdown_ms = 500\n\n\
         [cluster]\ndirectory = \"redis\"\nredis_url = \"{redis}\"\nlease_ms = 2000\n\
         renew_ms = 300\n{rest}"
    )
}

/// An origin advertising its RTMP address in the directory at `redis`; `streams` goes in a
/// `[streams]` section.
fn origin(dir: &Dir, name: &str, redis: &str, streams: &str) -> ServerProc {
    let port = free_port();
    let rest = format!("advertise = \"rtmp://127.0.0.1:{port}\"\n\n[streams]\n{streams}\n");
    let server = ServerProc::start_on(dir, name, &config(redis, &rest), port, 0);
    assert_eq!(server.rtmp.port(), port);
    server
}

/// An edge pulling from `origins` (their rendezvous order the fallback), looking streams up
/// in the directory at `redis` first.
fn edge(dir: &Dir, redis: &str, origins: &[String]) -> ServerProc {
    let rest = format!("\n[relay]\norigins = {origins:?}\nplayer_wait_ms = 2000\n");
    ServerProc::start(dir, "edge", &config(redis, &rest))
}

#[test]
fn an_edge_pulls_from_the_origin_the_directory_names_and_plays_on_when_redis_stops() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("cluster-directory");
    let source = h264_source(&dir, "src.flv", "testsrc", 8);
    let mut redis = Redis::start(&dir);
    let a = origin(&dir, "origin-a", &redis.url, "");
    let mut b = origin(&dir, "origin-b", &redis.url, "");
    let origins = [a.base_url(), b.base_url()];
    // Hashing alone would pull this stream from A: it is published on B.
    let name = name_pulled_first_from(0, &origins);
    let mut edge = edge(&dir, &redis.url, &origins);
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &b.url(&name), "ffmpeg-pub");
    b.wait_for_log(&["publishing", &format!("stream=live/{name}")], 1, WAIT);
    redis.wait_for_origin(&name, Some(&b.base_url()));

    let frames = watch(edge.rtmp, &name, Duration::from_secs(30));
    let out = dir.path("ffmpeg.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &edge.url(&name), &out, "ffmpeg-player");
    edge.wait_for_log(
        &["pull: connecting to origin", &pull_from(&b.url(&name))],
        1,
        WAIT,
    );
    let mut got = Vec::new();
    while got.len() < FPS {
        got.push(frames.recv_timeout(WAIT).expect("frames from origin B"));
    }
    // One pull, from B: A was never asked for the stream.
    let pulls = edge.log_lines_with(&["pull: connecting to origin"]);
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let on_a = a.log_lines_with(&[&format!("live/{name}")]);
    assert!(on_a.is_empty(), "{on_a:?}");
    // The directory goes away mid-stream: the origin notices at its next renewal, and
    // nothing that flows is touched.
    let stopped_at = Instant::now();
    redis.stop();
    b.wait_for_log(&["directory unreachable"], 1, WAIT);
    got.extend(frames.iter());
    let after = got.iter().filter(|(at, _)| *at > stopped_at).count();
    assert!(
        after >= 3 * FPS,
        "{after} frames after Redis stopped, want at least {}",
        3 * FPS
    );
    let gap = got.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    assert!(
        gap <= Duration::from_secs(1),
        "a {gap:?} gap between frames"
    );
    publisher.wait_ok(Duration::from_secs(30));
    player.stop_after(PLAYER_LIMIT, libc::SIGINT);
    let decoded = frame_md5s(&ffmpeg, &out);
    assert_tail_of(
        "ffmpeg on the edge",
        &frame_md5s(&ffmpeg, &source),
        &decoded,
        4 * FPS,
    );
}

/// Publishes `live/NAME` on `server` with the in-repo client and sends its headers and a
/// keyframe.
fn publish(server: &ServerProc, name: &str) -> Client {
    let mut publisher = Client::publish(server.rtmp, "live", name);
    publisher.send(type_id::VIDEO, 0, &media::avc_header());
    publisher.send(type_id::VIDEO, 0, &media::avc_frame(true, 1, 2000));
    publisher
}

#[test]
fn a_stream_held_by_one_origin_is_refused_by_a_second_and_taken_over_by_a_third() {
    let dir = Dir::new("cluster-leases");
    let redis = Redis::start(&dir);
    let mut a = origin(&dir, "origin-a", &redis.url, "");
    let mut b = origin(&dir, "origin-b", &redis.url, "");
    let mut c = origin(&dir, "origin-c", &redis.url, "publish_takeover = true");
    let _on_a = publish(&a, "dup");
    redis.wait_for_origin("dup", Some(&a.base_url()));

    // B (takeover off) accepts the publish, learns the lease is A's, and closes it.
    let mut on_b = publish(&b, "dup");
    b.wait_for_log(
        &["stream already published on another origin", &a.base_url()],
        1,
        WAIT,
    );
    on_b.wait_closed();
    assert_eq!(redis.origin_of("dup"), Some(a.base_url()));

    // C (takeover on) takes the lease; A closes its publisher at its next renewal.
    let mut on_c = publish(&c, "dup");
    c.wait_for_log(&["stream taken over from another origin"], 1, WAIT);
    a.wait_for_log(
        &["stream taken over on another origin", &c.base_url()],
        1,
        WAIT,
    );
    assert_eq!(redis.origin_of("dup"), Some(c.base_url()));
    // C's publisher goes on; when it leaves, C lets the lease go.
    on_c.send(type_id::VIDEO, 40, &media::avc_frame(false, 2, 500));
    drop(on_c);
    redis.wait_for_origin("dup", None);
}

#[test]
fn with_the_directory_unreachable_an_edge_pulls_by_rendezvous_hashing() {
    let dir = Dir::new("cluster-no-redis");
    // Nobody listens there.
    let redis = format!("redis://127.0.0.1:{}", free_port());
    let mut a = origin(&dir, "origin-a", &redis, "");
    let mut edge = edge(&dir, &redis, &[a.base_url()]);
    plays_by_rendezvous_hashing(&mut a, &mut edge);
}

/// With the directory out of reach (both log it), a stream published on origin `a` plays on
/// `edge`, which pulls from it as the first of its origins: the header and the keyframe
/// cached on `a`, then a new keyframe live, bit-exact.
fn plays_by_rendezvous_hashing(a: &mut ServerProc, edge: &mut ServerProc) {
    let mut publisher = publish(a, "s");
    a.wait_for_log(&["directory unreachable"], 1, WAIT);
    let mut player = Client::play(edge.rtmp, "live", "s");
    edge.wait_for_log(&["directory unreachable"], 1, WAIT);
    let cached = player.media(2);
    assert_eq!(
        cached[1].2.as_ref(),
        media::avc_frame(true, 1, 2000).as_slice()
    );
    let frame = media::avc_frame(true, 7, 3000);
    publisher.send(type_id::VIDEO, 40, &frame);
    assert_eq!(player.media(1)[0].2.as_ref(), frame.as_slice());
}

/// A directory that takes connections and never answers (a hung Redis: the kernel completes
/// the connections in the listen backlog, nothing reads them). `cluster.redis_timeout_ms`
/// bounds every call, so the origin still publishes and the edge falls back to rendezvous
/// hashing: the player gets the stream.
#[test]
fn a_directory_that_never_answers_times_out_and_the_edge_pulls_by_rendezvous_hashing() {
    let dir = Dir::new("cluster-silent-redis");
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let redis = format!("redis://{}", silent.local_addr().unwrap());
    let port = free_port();
    let rest = format!("redis_timeout_ms = 300\nadvertise = \"rtmp://127.0.0.1:{port}\"\n");
    let mut a = ServerProc::start_on(&dir, "origin-a", &config(&redis, &rest), port, 0);
    let rest = format!(
        "redis_timeout_ms = 300\n\n[relay]\norigins = {:?}\nplayer_wait_ms = 2000\n",
        [a.base_url()]
    );
    let mut edge = ServerProc::start(&dir, "edge", &config(&redis, &rest));
    plays_by_rendezvous_hashing(&mut a, &mut edge);
    drop(silent);
}

/// An ingest edge pushing every stream to the origins (the least-loaded live one first).
fn ingest_edge(dir: &Dir, redis: &str, origins: &[String]) -> ServerProc {
    let rest = format!(
        "\n[relay]\norigins = {origins:?}\n\n[[relay.push]]\napp = \"*\"\nurl = \"origins\"\n"
    );
    ServerProc::start(dir, "ingest", &config(redis, &rest))
}

/// The three tiers as processes: ffmpeg publishes to an ingest edge, which pushes to one of
/// two origins (takeover on, as a cluster runs them); two play edges find it in the
/// directory. The origin holding the stream is SIGKILLed mid-stream: the ingest edge
/// pushes to the other at once, which takes the lease over, and the play edges fail over to
/// it; then Redis stops, and the stream flows on.
#[test]
fn killing_the_origin_that_holds_a_stream_moves_it_to_the_other_with_players_kept() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("cluster-failover");
    let source = h264_source(&dir, "src.flv", "testsrc", 14);
    let mut redis = Redis::start(&dir);
    let takeover = "publish_takeover = true";
    let mut origins = [
        origin(&dir, "origin-a", &redis.url, takeover),
        origin(&dir, "origin-b", &redis.url, takeover),
    ];
    let urls: Vec<String> = origins.iter().map(ServerProc::base_url).collect();
    let mut ingest = ingest_edge(&dir, &redis.url, &urls);
    let play_edges = [
        edge(&dir, &redis.url, &urls),
        ServerProc::start(
            &dir,
            "edge-2",
            &config(
                &redis.url,
                &format!("\n[relay]\norigins = {urls:?}\nplayer_wait_ms = 2000\n"),
            ),
        ),
    ];
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &ingest.url("s"), "ffmpeg-pub");
    ingest.wait_for_log(&["push target publishing"], 1, WAIT);
    let deadline = Instant::now() + WAIT;
    let holder = loop {
        if let Some(holder) = redis.origin_of("s") {
            break urls.iter().position(|u| *u == holder).expect("an origin");
        }
        assert!(Instant::now() < deadline, "no lease for the stream");
        std::thread::sleep(Duration::from_millis(50));
    };
    let other = 1 - holder;

    let watchers: Vec<_> = play_edges
        .iter()
        .map(|e| watch(e.rtmp, "s", Duration::from_secs(40)))
        .collect();
    // ffmpeg on each play edge, for the frames bit for bit.
    let outs = [dir.path("ffmpeg-1.flv"), dir.path("ffmpeg-2.flv")];
    let mut ffmpeg_players: Vec<Proc> = play_edges
        .iter()
        .zip(&outs)
        .enumerate()
        .map(|(i, (e, out))| ffmpeg_play(&dir, &ffmpeg, &e.url("s"), out, &format!("ffmpeg-{i}")))
        .collect();
    let mut got: Vec<Vec<(Instant, u32)>> = vec![Vec::new(); 2];
    for (frames, got) in watchers.iter().zip(&mut got) {
        while got.len() < FPS {
            got.push(frames.recv_timeout(WAIT).expect("frames on a play edge"));
        }
    }
    let killed_at = Instant::now();
    origins[holder].kill();
    // The ingest edge pushes to the other origin, which takes the lease over.
    ingest.wait_for_log(&["push target publishing", &urls[other]], 1, WAIT);
    // Taken over at once (the dead origin's lease had not expired), not by expiry.
    origins[other].wait_for_log(&["stream taken over from another origin"], 1, WAIT);
    redis.wait_for_origin("s", Some(&urls[other]));
    for (frames, got) in watchers.iter().zip(&mut got) {
        while got.last().unwrap().0 < killed_at + Duration::from_secs(2) {
            got.push(frames.recv_timeout(WAIT).expect("frames after the kill"));
        }
    }
    // The directory stops; what flows carries on to the end of the stream.
    let redis_stopped_at = Instant::now();
    redis.stop();
    origins[other].wait_for_log(&["directory unreachable"], 1, WAIT);
    for (i, (frames, got)) in watchers.iter().zip(&mut got).enumerate() {
        got.extend(frames.iter());
        let after_kill = got.iter().filter(|(at, _)| *at > killed_at).count();
        let after_redis = got.iter().filter(|(at, _)| *at > redis_stopped_at).count();
        assert!(
            after_kill >= 6 * FPS && after_redis >= 3 * FPS,
            "play edge {i}: {after_kill} frames after the kill, {after_redis} after Redis stopped"
        );
        let gap = got.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
        assert!(
            gap <= Duration::from_secs(3),
            "play edge {i}: a {gap:?} gap between frames"
        );
        eprintln!("play edge {i}: largest gap {gap:?}");
    }
    publisher.wait_ok(Duration::from_secs(30));
    // ffmpeg on both play edges, across the failover: every frame from the source, from its
    // first GOP, through to the source's last frame.
    let expected = frame_md5s(&ffmpeg, &source);
    for (player, out) in ffmpeg_players.iter_mut().zip(&outs) {
        player.stop_after(PLAYER_LIMIT, libc::SIGINT);
        let decoded = frame_md5s(&ffmpeg, out);
        let who = out.display().to_string();
        common::procs::assert_run_of(&who, &expected, &decoded[..FPS]);
        assert!(
            decoded.iter().all(|m| expected.contains(m)),
            "{who}: a frame not in the source"
        );
        assert_eq!(decoded.last(), expected.last(), "{who}: got to the end");
    }
}

/// A play edge that advertises itself as a redirect target and, with `busy_connections`,
/// redirects new players while it has that many connections (0: never).
fn advertised_edge(
    dir: &Dir,
    name: &str,
    redis: &str,
    origins: &[String],
    busy_connections: u64,
) -> ServerProc {
    let (rtmp, http) = (free_port(), free_port());
    let rest = format!(
        "role = \"edge\"\nadvertise = \"rtmp://127.0.0.1:{rtmp}\"\n\
         advertise_http = \"http://127.0.0.1:{http}\"\n\
         redirect_when_busy = {}\nbusy_connections = {busy_connections}\n\n\
         [relay]\norigins = {origins:?}\nplayer_wait_ms = 2000\n",
        busy_connections > 0
    );
    let server = ServerProc::start_on(dir, name, &config(redis, &rest), rtmp, http);
    assert_eq!((server.rtmp.port(), server.http.port()), (rtmp, http));
    server
}

/// An edge past its busy mark sends new players to an idle edge: RTMP `connect` is rejected
/// with `ex.redirect` (followed here by the in-repo client, as the relay does), HTTP-FLV gets
/// a 302 that ffmpeg follows to the frames; back under the mark, it serves them itself.
#[test]
fn a_busy_edge_redirects_new_players_to_an_idle_edge() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("cluster-redirect");
    let source = h264_source(&dir, "src.flv", "testsrc", 12);
    let redis = Redis::start(&dir);
    let mut a = origin(&dir, "origin-a", &redis.url, "");
    let origins = [a.base_url()];
    // Busy from 4 connections: its 3 players and its pull.
    let mut busy = advertised_edge(&dir, "edge-busy", &redis.url, &origins, 4);
    let idle = advertised_edge(&dir, "edge-idle", &redis.url, &origins, 0);
    let _publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &a.url("s"), "ffmpeg-pub");
    a.wait_for_log(&["publishing", "stream=live/s"], 1, WAIT);

    // Three players make the first edge busy at its next measure.
    let mut players: Vec<Client> = (0..3)
        .map(|_| Client::play(busy.rtmp, "live", "s"))
        .collect();
    busy.wait_for_log(
        &["busy: new players are redirected", &idle.base_url()],
        1,
        WAIT,
    );

    let mut redirected = Client::connect(busy.rtmp, "live");
    let status = redirected.wait_for("the connect's answer", |e| {
        matches!(e, ClientEvent::Status { .. })
    });
    let ClientEvent::Status { code, redirect, .. } = status else {
        unreachable!()
    };
    assert_eq!(code, "NetConnection.Connect.Rejected");
    assert_eq!(redirect, Some(format!("{}/live", idle.base_url())));
    redirected.wait_closed();

    // ffmpeg over HTTP-FLV follows the 302 and gets the stream from the idle edge.
    let http_url = format!("http://{}/live/s.flv", busy.http);
    let out = dir.path("http.flv");
    let mut viewer = Proc::spawn(
        "ffmpeg-http",
        &dir,
        Command::new(&ffmpeg)
            .args(["-v", "warning", "-nostats", "-i", &http_url])
            .args(["-c", "copy", "-frames:v", "30", "-f", "flv", "-y"])
            .arg(&out),
    );
    viewer.wait_ok(WAIT);
    let expected = frame_md5s(&ffmpeg, &source);
    let got = frame_md5s(&ffmpeg, &out);
    common::procs::assert_run_of("ffmpeg via the redirect", &expected, &got);
    let redirects = busy.log_lines_with(&[&format!(
        "busy: redirected to http://{}/live/s.flv",
        idle.http
    )]);
    assert_eq!(redirects.len(), 1, "{}", busy.log());

    // Under the mark again, it serves new players itself.
    players.clear();
    busy.wait_for_log(&["not busy: new players are served here"], 1, WAIT);
    let mut served = Client::play(busy.rtmp, "live", "s");
    assert!(!served.media(1).is_empty());
}

/// Three origins; the edge starts pulling before the stream is published anywhere, so the
/// directory does not know it and the edge sits on the first origin of its rendezvous order,
/// which holds the play until a publisher comes (its silence would only be given up on after
/// `origin_timeout_ms`, 30 s here). The stream is then published on the third origin: the
/// edge, asking the directory again every second while nothing comes, moves there.
#[test]
fn a_pull_waiting_on_an_origin_without_the_stream_moves_to_the_origin_the_directory_names() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("cluster-relookup");
    let source = h264_source(&dir, "src.flv", "testsrc", 6);
    let redis = Redis::start(&dir);
    let origins: Vec<ServerProc> = ["origin-a", "origin-b", "origin-c"]
        .iter()
        .map(|n| origin(&dir, n, &redis.url, ""))
        .collect();
    let urls: Vec<String> = origins.iter().map(ServerProc::base_url).collect();
    let name = name_pulled_first_from(0, &urls);
    let rest = format!(
        "\n[relay]\norigins = {urls:?}\norigin_timeout_ms = 30000\nplayer_wait_ms = 30000\n"
    );
    let mut edge = ServerProc::start(&dir, "edge", &config(&redis.url, &rest));
    let frames = watch(edge.rtmp, &name, Duration::from_secs(25));
    edge.wait_for_log(
        &[
            "pull: connecting to origin",
            &pull_from(&origins[0].url(&name)),
        ],
        1,
        WAIT,
    );
    let _publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &origins[2].url(&name), "pub");
    redis.wait_for_origin(&name, Some(&urls[2]));
    let first = frames.recv_timeout(WAIT).expect("frames from origin C");
    assert!(first.1 < 10_000, "a frame of the stream: {first:?}");
    edge.wait_for_log(
        &[
            "pull: connecting to origin",
            &pull_from(&origins[2].url(&name)),
        ],
        1,
        WAIT,
    );
    assert!(
        edge.log_lines_with(&[&pull_from(&origins[1].url(&name))])
            .is_empty(),
        "B, without the stream, was never tried"
    );
}
