// Usage: node status.mjs STATUS_PAGE_URL STREAM SCREENSHOT.png
// Opens rtmp-edge's status page in headless Chromium, waits until it lists STREAM with a
// non-zero bitrate in, takes a screenshot, prints what the row shows as JSON, and exits 0 only
// if the stream was listed live.
import { chromium } from 'playwright-core';

const [url, stream, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 500 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
await page.goto(url);
await page
  .waitForFunction((s) => {
    const row = document.querySelector(`tr[data-stream="${s}"]`);
    return row && Number(row.dataset.bps) > 0;
  }, stream, { timeout: 30000, polling: 250 })
  .catch(() => {});
const row = await page.evaluate((s) => {
  const r = document.querySelector(`tr[data-stream="${s}"]`);
  return r ? { bps: Number(r.dataset.bps), cells: [...r.cells].map((c) => c.textContent.trim()) } : null;
}, stream);
const workers = await page.evaluate(() => document.querySelectorAll('#workers tr').length);
await page.screenshot({ path: shot, fullPage: true });
await browser.close();
console.log(JSON.stringify({ row, workers, pageErrors }));
process.exit(!row || !(row.bps > 0) || pageErrors.length || workers < 1 ? 1 : 0);
