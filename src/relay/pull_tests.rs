//! The pull lifecycle driven in memory: time advances by passing later `Instant`s.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn timeouts() -> PullTimeouts {
    PullTimeouts {
        origin_timeout: 3 * S,
        pull_idle: 10 * S,
        player_wait: 20 * S,
    }
}

fn origins(n: usize) -> Origins {
    let urls = (0..n)
        .map(|i| OriginUrl::parse(&format!("rtmp://origin-{i}:1935")).unwrap())
        .collect();
    Origins::new(urls, Backoff::default())
}

/// The stream's origins in the order it tries them.
fn order(o: &Origins) -> Vec<usize> {
    rendezvous_order("live/demo", o.urls())
}

fn actions(p: &mut Pull) -> Vec<PullAction> {
    std::iter::from_fn(|| p.poll_action()).collect()
}

/// The origins of the `Connect`s among `actions`.
fn connects(actions: &[PullAction]) -> Vec<usize> {
    actions
        .iter()
        .filter_map(|a| match a {
            PullAction::Connect { origin, .. } => Some(*origin),
            _ => None,
        })
        .collect()
}

fn start(o: &Origins, now: Instant) -> Pull {
    Pull::new("live?token=abc", "demo?sig=1", 1, timeouts(), o, None, now)
}

#[test]
fn a_new_pull_connects_to_the_first_origin_in_rendezvous_order_with_the_queries_kept() {
    let t0 = Instant::now();
    let o = origins(3);
    let mut p = start(&o, t0);
    assert_eq!(p.key(), "live/demo");
    let first = order(&o)[0];
    let url = o.urls()[first].pull_url("live?token=abc", "demo?sig=1");
    assert_eq!(
        url.to_string(),
        format!("rtmp://origin-{first}:1935/live?token=abc/demo?sig=1")
    );
    assert_eq!(
        actions(&mut p),
        [PullAction::Connect { origin: first, url }]
    );
    assert_eq!(p.poll_timeout(), Some(t0 + 3 * S));
}

/// Its players may be gone by the time the worker starts it (a push target's connection,
/// a player of the hub, closed with the publisher that set the pull off): it never dials.
#[test]
fn a_pull_started_with_no_players_is_closed_and_dials_nothing() {
    let t0 = Instant::now();
    let o = origins(2);
    let mut p = Pull::new("live", "demo", 0, timeouts(), &o, None, t0);
    assert!(p.is_closed());
    assert_eq!(actions(&mut p), []);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn failures_fail_over_at_once_in_rendezvous_order() {
    let t0 = Instant::now();
    let mut o = origins(3);
    let mut p = start(&o, t0);
    let _ = actions(&mut p);
    p.failed(FailureKind::ConnectFailed, &mut o, t0 + MS);
    let a = actions(&mut p);
    assert_eq!(a[0], PullAction::Disconnect);
    assert_eq!(connects(&a), [order(&o)[1]]);
    p.connected(t0 + 2 * MS);
    p.failed(FailureKind::Refused, &mut o, t0 + 3 * MS);
    assert_eq!(connects(&actions(&mut p)), [order(&o)[2]]);
    let failed = o.health(order(&o)[1]);
    assert_eq!(failed.last_failure, Some(FailureKind::Refused));
    assert_eq!(failed.down_until, Some(t0 + 3 * MS + S));
}

#[test]
fn when_every_origin_is_down_the_pull_waits_for_the_earliest_backoff() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let [a, b] = order(&o)[..] else {
        unreachable!()
    };
    o.failed(a, FailureKind::ConnectFailed, t0); // a: down until t0 + 1 s
    o.failed(a, FailureKind::ConnectFailed, t0); // a: down until t0 + 2 s
    let mut p = start(&o, t0);
    assert_eq!(connects(&actions(&mut p)), [b]);
    p.failed(FailureKind::ConnectFailed, &mut o, t0 + S / 2); // b: until t0 + 1.5 s
    assert_eq!(actions(&mut p), [PullAction::Disconnect]);
    assert_eq!(
        p.state(),
        &PullState::Wanted {
            retry_at: t0 + S + S / 2
        }
    );
    assert_eq!(p.poll_timeout(), Some(t0 + S + S / 2));
    p.handle_timeout(&mut o, t0 + S);
    assert!(actions(&mut p).is_empty(), "an early timer does nothing");
    p.handle_timeout(&mut o, t0 + S + S / 2);
    assert_eq!(connects(&actions(&mut p)), [b]);
}

#[test]
fn a_silent_origin_fails_as_connect_failed_or_no_media_by_how_far_it_got() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let [a, b] = order(&o)[..] else {
        unreachable!()
    };
    let mut p = start(&o, t0);
    p.handle_timeout(&mut o, t0 + 3 * S);
    assert_eq!(o.health(a).last_failure, Some(FailureKind::ConnectFailed));
    assert_eq!(connects(&actions(&mut p)), [a, b]);
    p.connected(t0 + 3 * S + MS);
    p.playing(t0 + 3 * S + 2 * MS);
    assert!(matches!(
        p.state(),
        PullState::Connecting {
            progress: Progress::PlayStarted,
            ..
        }
    ));
    p.handle_timeout(&mut o, t0 + 6 * S);
    assert_eq!(o.health(b).last_failure, Some(FailureKind::NoMedia));
}

#[test]
fn a_stall_mid_stream_fails_over_to_the_next_origin() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let [a, b] = order(&o)[..] else {
        unreachable!()
    };
    let mut p = start(&o, t0);
    let _ = actions(&mut p);
    p.media(&mut o, t0 + S);
    assert_eq!(
        p.state(),
        &PullState::Playing {
            origin: a,
            last_media: t0 + S
        }
    );
    p.media(&mut o, t0 + 2 * S);
    assert_eq!(p.poll_timeout(), Some(t0 + 5 * S));
    p.handle_timeout(&mut o, t0 + 4 * S);
    assert!(actions(&mut p).is_empty(), "media is 2 s old: no stall yet");
    p.handle_timeout(&mut o, t0 + 5 * S);
    assert_eq!(o.health(a).last_failure, Some(FailureKind::Stall));
    let act = actions(&mut p);
    assert_eq!(act[0], PullAction::Disconnect);
    assert_eq!(connects(&act), [b]);
}

#[test]
fn first_media_resets_the_origins_backoff() {
    let t0 = Instant::now();
    let mut o = origins(1);
    o.failed(0, FailureKind::ConnectFailed, t0);
    o.failed(0, FailureKind::ConnectFailed, t0);
    let mut p = start(&o, t0 + 2 * S);
    p.media(&mut o, t0 + 3 * S);
    assert_eq!(*o.health(0), OriginHealth::default());
}

#[test]
fn the_pull_lingers_for_pull_idle_after_its_last_player_leaves_then_closes() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let mut p = start(&o, t0);
    p.media(&mut o, t0 + S);
    let _ = actions(&mut p);
    p.players_changed(0, t0 + 2 * S);
    assert!(matches!(p.state(), PullState::Lingering { .. }));
    // Media keeps flowing (so the GOP cache stays warm); only the idle time closes it.
    for s in 3..12 {
        p.media(&mut o, t0 + s * S);
        p.handle_timeout(&mut o, t0 + s * S);
        assert!(actions(&mut p).is_empty(), "closed early at {s} s");
    }
    assert_eq!(p.poll_timeout(), Some(t0 + 12 * S));
    p.handle_timeout(&mut o, t0 + 12 * S);
    assert_eq!(actions(&mut p), [PullAction::Disconnect]);
    assert!(p.is_closed());
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn a_player_returning_while_the_pull_lingers_cancels_the_close() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let mut p = start(&o, t0);
    p.media(&mut o, t0 + S);
    p.players_changed(0, t0 + 2 * S);
    p.media(&mut o, t0 + 9 * S);
    p.players_changed(1, t0 + 9 * S);
    assert_eq!(
        p.state(),
        &PullState::Playing {
            origin: 0,
            last_media: t0 + 9 * S
        }
    );
    p.media(&mut o, t0 + 12 * S);
    p.handle_timeout(&mut o, t0 + 12 * S);
    let _ = actions(&mut p);
    assert!(!p.is_closed());
    assert_eq!(p.players(), 1);
}

#[test]
fn a_lingering_pull_whose_origin_stalls_closes_instead_of_failing_over() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let mut p = start(&o, t0);
    p.media(&mut o, t0);
    p.players_changed(0, t0 + S);
    let _ = actions(&mut p);
    assert_eq!(p.poll_timeout(), Some(t0 + 3 * S));
    p.handle_timeout(&mut o, t0 + 3 * S);
    assert_eq!(actions(&mut p), [PullAction::Disconnect]);
    assert!(p.is_closed());
}

#[test]
fn players_leaving_before_any_media_close_the_pull_at_once() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let mut p = start(&o, t0);
    let _ = actions(&mut p);
    p.players_changed(0, t0 + S);
    assert_eq!(actions(&mut p), [PullAction::Disconnect]);
    assert!(p.is_closed());
    // Waiting for a backoff: nothing is open, nothing to disconnect.
    o.failed(0, FailureKind::ConnectFailed, t0 + S);
    let mut p = start(&o, t0 + S);
    assert!(matches!(p.state(), PullState::Wanted { .. }));
    p.players_changed(0, t0 + S);
    assert!(actions(&mut p).is_empty());
    assert!(p.is_closed());
}

#[test]
fn a_redirect_is_followed_once_then_fails_the_origin() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let [a, b] = order(&o)[..] else {
        unreachable!()
    };
    let mut p = start(&o, t0);
    let _ = actions(&mut p);
    p.redirect("rtmp://elsewhere:1940/live/demo", &mut o, t0 + S);
    let act = actions(&mut p);
    assert_eq!(act[0], PullAction::Disconnect);
    let PullAction::Connect { origin, url } = &act[1] else {
        panic!("{act:?}")
    };
    assert_eq!(
        *origin, a,
        "a redirect is charged to the origin that sent it"
    );
    assert_eq!(
        url.to_string(),
        "rtmp://elsewhere:1940/live?token=abc/demo?sig=1"
    );
    assert_eq!(
        p.poll_timeout(),
        Some(t0 + 4 * S),
        "the attempt's clock restarts"
    );
    p.redirect("rtmp://third:1935", &mut o, t0 + 2 * S);
    assert_eq!(o.health(a).last_failure, Some(FailureKind::Redirect));
    assert_eq!(connects(&actions(&mut p)), [b]);
    // A redirect to something we cannot use fails at once.
    p.redirect("http://b", &mut o, t0 + 3 * S);
    assert_eq!(o.health(b).last_failure, Some(FailureKind::Redirect));
}

#[test]
fn players_are_given_up_on_after_player_wait_without_media() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let mut p = start(&o, t0);
    let mut now = t0;
    while !p.is_closed() {
        now = p.poll_timeout().expect("a live pull always has a timer");
        p.handle_timeout(&mut o, now);
        assert!(now <= t0 + 20 * S);
    }
    assert_eq!(now, t0 + 20 * S);
    let act = actions(&mut p);
    assert_eq!(act.last(), Some(&PullAction::GiveUp));
    // Attempts at 0, 4, 9 and 16 s: each times out after 3 s and backs off 1, 2, 4, 8 s.
    assert_eq!(connects(&act).len(), 4);
}

#[test]
fn the_wait_bound_after_a_mid_stream_failure_counts_from_the_last_media() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let mut p = start(&o, t0);
    p.media(&mut o, t0 + 30 * S);
    p.failed(FailureKind::Stall, &mut o, t0 + 31 * S);
    assert!(matches!(p.state(), PullState::Wanted { .. }));
    p.handle_timeout(&mut o, t0 + 50 * S - MS);
    assert!(!p.is_closed());
    p.handle_timeout(&mut o, t0 + 50 * S);
    assert_eq!(actions(&mut p).last(), Some(&PullAction::GiveUp));
}

#[test]
fn with_no_origins_the_pull_gives_up_at_once() {
    let mut p = start(&origins(0), Instant::now());
    assert_eq!(actions(&mut p), [PullAction::GiveUp]);
    assert!(p.is_closed());
}

#[derive(Debug, Clone)]
enum Input {
    Players(usize),
    Connected,
    Playing,
    Media,
    Failed(u8),
    Redirect(bool),
    Timeout,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (0usize..3).prop_map(Input::Players),
        Just(Input::Connected),
        Just(Input::Playing),
        Just(Input::Media),
        (0u8..5).prop_map(Input::Failed),
        any::<bool>().prop_map(Input::Redirect),
        Just(Input::Timeout),
    ]
}

proptest! {
    /// Whatever happens, a pull holds at most one upstream connection, has a timer while
    /// alive, and says nothing once closed.
    #[test]
    fn never_two_connections_and_silent_once_closed(
        origin_count in 0usize..4,
        steps in proptest::collection::vec((input(), 0u64..4_000), 1..60),
    ) {
        let kinds = [
            FailureKind::ConnectFailed,
            FailureKind::Refused,
            FailureKind::NoMedia,
            FailureKind::Stall,
            FailureKind::Redirect,
        ];
        let mut o = origins(origin_count);
        let mut now = Instant::now();
        let mut p = start(&o, now);
        let mut open = false;
        let mut closed = false;
        for (input, ms) in steps {
            for a in actions(&mut p) {
                prop_assert!(!closed, "{a:?} after close");
                match a {
                    PullAction::Connect { .. } => {
                        prop_assert!(!open, "second connection");
                        open = true;
                    }
                    PullAction::Disconnect => open = false,
                    PullAction::GiveUp => {}
                }
            }
            if p.is_closed() {
                prop_assert!(!open, "closed with a connection open");
                prop_assert_eq!(p.poll_timeout(), None);
                closed = true;
            } else {
                prop_assert!(p.poll_timeout().is_some());
            }
            now += Duration::from_millis(ms);
            match input {
                Input::Players(n) => p.players_changed(n, now),
                Input::Connected => p.connected(now),
                Input::Playing => p.playing(now),
                Input::Media => p.media(&mut o, now),
                Input::Failed(k) => p.failed(kinds[usize::from(k)], &mut o, now),
                Input::Redirect(ok) => {
                    let target = if ok { "rtmp://r:1935/x" } else { "ftp://r" };
                    p.redirect(target, &mut o, now);
                }
                Input::Timeout => p.handle_timeout(&mut o, now),
            }
        }
    }
}

// ---- reconnect requests and reloads ----

/// A pull delivering from the first origin in its order.
fn playing(o: &mut Origins, t0: Instant) -> (Pull, usize) {
    let mut p = start(o, t0);
    let first = connects(&actions(&mut p))[0];
    p.connected(t0);
    p.playing(t0);
    p.media(o, t0 + MS);
    assert!(matches!(p.state(), PullState::Playing { .. }));
    (p, first)
}

#[test]
fn a_reconnect_request_with_a_tc_url_asks_the_same_stream_of_that_host_before_breaking() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let (mut p, first) = playing(&mut o, t0);
    let (origin, url) = p
        .reconnect(Some("rtmp://standby:1940/live"), &mut o, t0 + S)
        .expect("a standby target");
    assert_eq!(origin, first, "charged to the same origin");
    assert_eq!(url.endpoint().host, "standby");
    assert_eq!(url.endpoint().port, 1940);
    assert_eq!(url.stream(), "demo?sig=1");
    assert!(actions(&mut p).is_empty(), "the current connection stays");
    assert!(o.health(first).is_up(t0 + S), "not marked down");
    p.handed_over(origin, &mut o, t0 + 2 * S);
    assert_eq!(
        p.state(),
        &PullState::Playing {
            origin,
            last_media: t0 + 2 * S
        }
    );
}

#[test]
fn a_reconnect_request_without_a_tc_url_moves_to_the_next_origin_and_marks_the_first_down() {
    let t0 = Instant::now();
    let mut o = origins(3);
    let (mut p, first) = playing(&mut o, t0);
    let (next, url) = p.reconnect(None, &mut o, t0 + S).expect("another origin");
    assert_eq!(next, order(&o)[1]);
    assert_eq!(url.endpoint(), o.urls()[next].endpoint());
    assert!(
        !o.health(first).is_up(t0 + S),
        "the draining origin is down"
    );
    assert_eq!(o.health(first).last_failure, Some(FailureKind::Draining));
    assert!(actions(&mut p).is_empty(), "make before break");
    p.handed_over(next, &mut o, t0 + 2 * S);
    assert_eq!(p.origin(), Some(next));
    // A later stall is charged to the new origin.
    p.handle_timeout(&mut o, t0 + 6 * S);
    assert!(!o.health(next).is_up(t0 + 6 * S));
}

#[test]
fn a_reconnect_request_with_no_other_origin_keeps_the_connection() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let (mut p, _) = playing(&mut o, t0);
    assert_eq!(p.reconnect(None, &mut o, t0 + S), None);
    assert!(actions(&mut p).is_empty());
    assert!(matches!(p.state(), PullState::Playing { .. }));
}

#[test]
fn a_reconnect_request_while_connecting_moves_on_at_once() {
    let t0 = Instant::now();
    let mut o = origins(2);
    let mut p = start(&o, t0);
    let first = connects(&actions(&mut p))[0];
    assert_eq!(p.reconnect(None, &mut o, t0 + MS), None);
    let next = actions(&mut p);
    assert_eq!(next[0], PullAction::Disconnect);
    assert_eq!(connects(&next), vec![order(&o)[1]]);
    assert_ne!(connects(&next)[0], first);
}

#[test]
fn a_reload_keeps_pulls_on_kept_origins_and_moves_those_on_removed_ones() {
    let t0 = Instant::now();
    let mut o = origins(3);
    let (mut p, first) = playing(&mut o, t0);
    // The same origins in another order: the pull follows its origin's new index.
    let mut urls = o.urls().to_vec();
    urls.reverse();
    let remap = o.reconfigure(urls);
    assert_eq!(p.reconfigured(&remap, &mut o, t0 + S), None);
    assert_eq!(p.origin(), remap[first]);
    // Its origin removed: a standby to the stream's first origin among the rest.
    let current = p.origin().unwrap();
    let kept: Vec<OriginUrl> = o
        .urls()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != current)
        .map(|(_, u)| u.clone())
        .collect();
    let remap = o.reconfigure(kept);
    let (next, url) = p.reconfigured(&remap, &mut o, t0 + S).expect("a standby");
    assert_eq!(next, rendezvous_order("live/demo", o.urls())[0]);
    assert_eq!(url.endpoint(), o.urls()[next].endpoint());
    assert_eq!(p.origin(), Some(next));
    assert!(actions(&mut p).is_empty(), "media keeps flowing meanwhile");
}

/// The cluster directory names an origin: it is tried first, learned if not configured;
/// once it fails the rendezvous order takes over, and a fresh answer brings a waiting pull
/// to the origin named at once.
#[test]
fn the_origin_the_directory_names_is_tried_first_and_a_new_answer_ends_a_backoff_wait() {
    let t0 = Instant::now();
    let mut o = origins(1);
    let named = OriginUrl::parse("rtmp://origin-x:1935").unwrap();
    let x = o.learn(named.clone()).unwrap();
    assert_eq!((x, o.learn(named)), (1, Some(1)), "learned once");
    let mut p = Pull::new("live", "demo", 1, timeouts(), &o, Some(x), t0);
    assert_eq!(connects(&actions(&mut p)), [x]);
    // X fails: the configured origin is next (learned ones are not in the rendezvous
    // order); it fails too, and the pull waits for a backoff.
    p.failed(FailureKind::ConnectFailed, &mut o, t0);
    assert_eq!(connects(&actions(&mut p)), [0]);
    p.failed(FailureKind::ConnectFailed, &mut o, t0);
    let _ = actions(&mut p);
    assert!(matches!(p.state(), PullState::Wanted { .. }));
    // With X back up, the rendezvous order still holds only the configured origin.
    assert_eq!(
        o.next_origin("live/demo", t0 + 60 * S),
        Some(NextOrigin::Now(0))
    );
    // The directory now names a third origin: dialled at once, no backoff wait.
    let y = o
        .learn(OriginUrl::parse("rtmp://origin-y:1935").unwrap())
        .unwrap();
    p.prefer(y, &o, t0 + 10 * MS);
    assert_eq!(connects(&actions(&mut p)), [y]);
    // Named while Y is still connecting (no media yet): the pull moves to the origin named.
    p.prefer(x, &o, t0 + 60 * S);
    assert_eq!(
        actions(&mut p),
        [
            PullAction::Disconnect,
            PullAction::Connect {
                origin: x,
                url: o.urls()[x].pull_url("live", "demo")
            }
        ]
    );
    // Once it delivers, a new answer does not move it.
    p.playing(t0 + 60 * S);
    p.media(&mut o, t0 + 60 * S);
    p.prefer(y, &o, t0 + 61 * S);
    assert!(actions(&mut p).is_empty());
    // A reload keeps learned origins after the configured ones.
    let remap = o.reconfigure(vec![OriginUrl::parse("rtmp://origin-z:1935").unwrap()]);
    assert_eq!(remap, [None, Some(1), Some(2)]);
    assert_eq!(o.urls()[1].to_string(), "rtmp://origin-x:1935");
}

#[test]
fn learned_origins_are_capped() {
    let mut o = origins(1);
    for i in 0..MAX_LEARNED_ORIGINS {
        let url = OriginUrl::parse(&format!("rtmp://learned-{i}")).unwrap();
        assert!(o.learn(url).is_some());
    }
    assert_eq!(o.learn(OriginUrl::parse("rtmp://one-more").unwrap()), None);
    assert_eq!(o.urls().len(), 1 + MAX_LEARNED_ORIGINS);
}
