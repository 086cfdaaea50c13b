// Usage: node play.mjs hls|flv MEDIA_URL PAGE_BASE_URL SCREENSHOT.png
// Opens player.html in headless Chromium, waits until the video has played 2 s of decoded
// media (or a player error), takes a screenshot, prints the state as JSON, exits 0 only if
// playback advanced.
import { chromium } from 'playwright-core';

const [kind, src, base, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
const page = await browser.newPage({ viewport: { width: 640, height: 400 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
await page.goto(`${base}player.html?kind=${kind}&src=${encodeURIComponent(src)}`);
await page
  .waitForFunction(() => window.playerError || window.played > 2, null,
    { timeout: 45000, polling: 200 })
  .catch(() => {});
const state = await page.evaluate(() => {
  const v = document.getElementById('v');
  return { played: window.played, currentTime: v.currentTime, videoWidth: v.videoWidth, playerError: window.playerError || null };
});
await page.screenshot({ path: shot });
await browser.close();
console.log(JSON.stringify({ ...state, pageErrors }));
process.exit(state.playerError || pageErrors.length || !(state.played > 2) || !state.videoWidth ? 1 : 0);
