//! [`Policy`]: `[auth]` compiled for the loop: CIDR lists per app and role, signature
//! requirements, keys and hook URLs.

use std::collections::HashMap;
use std::net::IpAddr;

use super::cidr::Cidr;
use super::sign::{self, Keys};
use super::webhook::HookUrl;
use super::{Denial, Role};
use crate::config::AuthConfig;

/// The rules of one app (or the defaults).
#[derive(Debug, Clone, Default)]
struct Rules {
    allow_publish: Vec<Cidr>,
    deny_publish: Vec<Cidr>,
    allow_play: Vec<Cidr>,
    deny_play: Vec<Cidr>,
    sign_publish: bool,
    sign_play: bool,
}

impl Rules {
    fn lists(&self, role: Role) -> (&[Cidr], &[Cidr]) {
        match role {
            Role::Publish => (&self.allow_publish, &self.deny_publish),
            Role::Play => (&self.allow_play, &self.deny_play),
        }
    }

    fn signed(&self, role: Role) -> bool {
        match role {
            Role::Publish => self.sign_publish,
            Role::Play => self.sign_play,
        }
    }
}

/// The in-loop stages of `[auth]` (IP rules, signed URLs) and where its hooks are.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    defaults: Rules,
    apps: HashMap<String, Rules>,
    keys: Keys,
    on_publish: Option<HookUrl>,
    on_play: Option<HookUrl>,
    on_done: Option<HookUrl>,
}

/// A config error: the key, the offending value (never a secret) and the reason.
pub type PolicyError = (&'static str, String, String);

fn cidrs(key: &'static str, list: &[String]) -> Result<Vec<Cidr>, PolicyError> {
    list.iter()
        .map(|text| {
            text.parse()
                .map_err(|e: super::cidr::CidrError| (key, text.clone(), e.to_string()))
        })
        .collect()
}

fn hook(key: &'static str, url: &str) -> Result<Option<HookUrl>, PolicyError> {
    if url.is_empty() {
        return Ok(None);
    }
    HookUrl::parse(url)
        .map(Some)
        .map_err(|reason| (key, url.to_owned(), reason.to_owned()))
}

impl Policy {
    /// Compiles `[auth]`; an error names the key, the value and the rule it breaks.
    pub fn new(config: &AuthConfig) -> Result<Self, PolicyError> {
        let defaults = Rules {
            allow_publish: cidrs("auth.allow_publish", &config.allow_publish)?,
            deny_publish: cidrs("auth.deny_publish", &config.deny_publish)?,
            allow_play: cidrs("auth.allow_play", &config.allow_play)?,
            deny_play: cidrs("auth.deny_play", &config.deny_play)?,
            sign_publish: config.sign_publish,
            sign_play: config.sign_play,
        };
        let mut apps = HashMap::new();
        for app in &config.app {
            if app.name.is_empty() || app.name.contains(['/', '?']) {
                return Err((
                    "auth.app",
                    app.name.clone(),
                    "`name` must be an app name".into(),
                ));
            }
            let list = |key, list: &Option<Vec<String>>, default: &Vec<Cidr>| match list {
                Some(list) => cidrs(key, list),
                None => Ok(default.clone()),
            };
            let rules = Rules {
                allow_publish: list(
                    "auth.app.allow_publish",
                    &app.allow_publish,
                    &defaults.allow_publish,
                )?,
                deny_publish: list(
                    "auth.app.deny_publish",
                    &app.deny_publish,
                    &defaults.deny_publish,
                )?,
                allow_play: list("auth.app.allow_play", &app.allow_play, &defaults.allow_play)?,
                deny_play: list("auth.app.deny_play", &app.deny_play, &defaults.deny_play)?,
                sign_publish: app.sign_publish.unwrap_or(defaults.sign_publish),
                sign_play: app.sign_play.unwrap_or(defaults.sign_play),
            };
            if apps.insert(app.name.clone(), rules).is_some() {
                return Err(("auth.app", app.name.clone(), "listed twice".into()));
            }
        }
        for (kid, secret) in &config.keys {
            if kid.is_empty()
                || !kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err((
                    "auth.keys",
                    kid.clone(),
                    "a key id is letters, digits, `-`, `_` or `.`".into(),
                ));
            }
            if secret.len() < 16 {
                return Err((
                    "auth.keys",
                    kid.clone(),
                    "the secret must be at least 16 bytes".into(),
                ));
            }
        }
        let signs = defaults.sign_publish
            || defaults.sign_play
            || apps.values().any(|r| r.sign_publish || r.sign_play);
        if signs && config.keys.is_empty() {
            return Err((
                "auth.keys",
                String::new(),
                "signatures are required but no key is configured".into(),
            ));
        }
        Ok(Self {
            defaults,
            apps,
            keys: Keys::new(config.keys.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            on_publish: hook("auth.on_publish", &config.on_publish)?,
            on_play: hook("auth.on_play", &config.on_play)?,
            on_done: hook("auth.on_done", &config.on_done)?,
        })
    }

    fn rules(&self, app: &str) -> &Rules {
        self.apps.get(app).unwrap_or(&self.defaults)
    }

    /// The IP rules of `app` for `role`: deny first, then allow (an empty allow list allows).
    pub fn check_ip(&self, role: Role, app: &str, ip: IpAddr) -> Result<(), Denial> {
        let (allow, deny) = self.rules(app).lists(role);
        if deny.iter().any(|c| c.contains(ip)) {
            return Err(Denial::IpDenied);
        }
        if !allow.is_empty() && !allow.iter().any(|c| c.contains(ip)) {
            return Err(Denial::IpNotAllowed);
        }
        Ok(())
    }

    /// The in-loop stages for `role` of `app/stream` by `ip` with `query`, at Unix time `now`:
    /// IP rules, then the signature when the app requires one.
    pub fn check(
        &self,
        role: Role,
        app: &str,
        stream: &str,
        query: &str,
        ip: IpAddr,
        now: u64,
    ) -> Result<(), Denial> {
        self.check_ip(role, app, ip)?;
        if self.rules(app).signed(role) {
            sign::verify(&self.keys, role, app, stream, query, now)?;
        }
        Ok(())
    }

    /// True when nothing in `[auth]` concerns `role` of `app` (no IP rules, signature or
    /// hook, `on_done` included): requests skip the stages altogether.
    pub fn open(&self, role: Role, app: &str) -> bool {
        let (allow, deny) = self.rules(app).lists(role);
        allow.is_empty() && deny.is_empty() && !self.guarded(role, app) && self.on_done.is_none()
    }

    /// True when `role` of `app` needs more than its IP rules (a signature or a hook): an
    /// HLS/DASH request then needs a viewer allowance or a full check.
    pub fn guarded(&self, role: Role, app: &str) -> bool {
        self.rules(app).signed(role) || self.hook(role).is_some()
    }

    /// The hook to ask before `role` is accepted.
    pub fn hook(&self, role: Role) -> Option<&HookUrl> {
        match role {
            Role::Publish => self.on_publish.as_ref(),
            Role::Play => self.on_play.as_ref(),
        }
    }

    /// The hook told when an allowed session ends.
    pub fn done_hook(&self) -> Option<&HookUrl> {
        self.on_done.as_ref()
    }

    /// The signing keys (for `rtmp-edge sign`).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthAppConfig;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn deny_rules_win_over_allow_rules_and_an_empty_allow_list_allows() {
        let config = AuthConfig {
            allow_publish: vec!["10.0.0.0/8".into()],
            deny_publish: vec!["10.9.0.0/16".into()],
            deny_play: vec!["2001:db8::/32".into()],
            ..AuthConfig::default()
        };
        let policy = Policy::new(&config).unwrap();
        assert_eq!(
            policy.check_ip(Role::Publish, "live", ip("10.1.2.3")),
            Ok(())
        );
        assert_eq!(
            policy.check_ip(Role::Publish, "live", ip("10.9.2.3")),
            Err(Denial::IpDenied)
        );
        assert_eq!(
            policy.check_ip(Role::Publish, "live", ip("192.0.2.1")),
            Err(Denial::IpNotAllowed)
        );
        assert_eq!(policy.check_ip(Role::Play, "live", ip("192.0.2.1")), Ok(()));
        assert_eq!(
            policy.check_ip(Role::Play, "live", ip("2001:db8::5")),
            Err(Denial::IpDenied)
        );
    }

    #[test]
    fn an_app_table_replaces_only_the_keys_it_sets() {
        let config = AuthConfig {
            deny_play: vec!["0.0.0.0/0".into()],
            sign_publish: true,
            keys: [("default".to_string(), "0123456789abcdef".to_string())].into(),
            app: vec![AuthAppConfig {
                name: "open".into(),
                deny_play: Some(vec![]),
                ..AuthAppConfig::default()
            }],
            ..AuthConfig::default()
        };
        let policy = Policy::new(&config).unwrap();
        let client = ip("192.0.2.1");
        assert_eq!(policy.check_ip(Role::Play, "open", client), Ok(()));
        assert_eq!(
            policy.check_ip(Role::Play, "live", client),
            Err(Denial::IpDenied)
        );
        // sign_publish is inherited by the app.
        assert_eq!(
            policy.check(Role::Publish, "open", "s", "", client, 0),
            Err(Denial::SignatureMissing)
        );
        assert!(policy.guarded(Role::Publish, "open"));
        assert!(!policy.guarded(Role::Play, "open"));
        assert!(policy.open(Role::Play, "open") && !policy.open(Role::Play, "live"));
    }

    #[test]
    fn bad_entries_are_named_by_key() {
        let bad_cidr = AuthConfig {
            allow_play: vec!["10.0.0.0/40".into()],
            ..AuthConfig::default()
        };
        assert_eq!(Policy::new(&bad_cidr).unwrap_err().0, "auth.allow_play");
        let no_key = AuthConfig {
            sign_play: true,
            ..AuthConfig::default()
        };
        assert_eq!(Policy::new(&no_key).unwrap_err().0, "auth.keys");
        let bad_hook = AuthConfig {
            on_play: "https://hook.example/x".into(),
            ..AuthConfig::default()
        };
        assert_eq!(Policy::new(&bad_hook).unwrap_err().0, "auth.on_play");
    }

    #[test]
    fn the_default_policy_allows_everyone_without_a_hook() {
        let policy = Policy::new(&AuthConfig::default()).unwrap();
        assert_eq!(
            policy.check(Role::Publish, "live", "x", "", ip("::1"), 0),
            Ok(())
        );
        assert!(policy.hook(Role::Play).is_none() && !policy.guarded(Role::Play, "live"));
        assert!(policy.open(Role::Play, "live") && policy.open(Role::Publish, "x"));
    }
}
