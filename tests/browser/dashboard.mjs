// What a person sees on GET /api/dashboard, in Debian's headless Chromium driven by
// playwright-core. Started by tests/dashboard_browser.rs, which runs `patchwave serve` with the
// Azure stand-in, a rolled-back rollout and one still moving; reads from the environment:
//   DASHBOARD_URL     the page with the function key as ?code=
//   ROLLED_BACK       id of the rollout whose pilot wave failed and rolled back
//   MOVING            id of the rollout to pause from the page
//   PAUSE_REASON      the reason typed into the page
//   READER_PRINCIPAL  an X-MS-CLIENT-PRINCIPAL of a reader (App Service Authentication)
//   SCREENSHOT        where the screenshot goes
// Prints one JSON line with what it saw; exits non-zero on the first thing that is wrong.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env("DASHBOARD_URL");
const rolledBack = env("ROLLED_BACK");
const moving = env("MOVING");
const reason = env("PAUSE_REASON");
const readerPrincipal = env("READER_PRINCIPAL");
const screenshot = env("SCREENSHOT");
const TIMEOUT = 20000;

const profile = mkdtempSync(join(tmpdir(), "patchwave-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const problems = [];
const seen = {};

function watch(page) {
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("request", (request) => {
    const target = new URL(request.url());
    if (!["data:", "about:"].includes(target.protocol) && target.origin !== new URL(url).origin) {
      problems.push(`request outside the origin: ${request.url()}`);
    }
  });
}

const text = async (locator) => (await locator.textContent({ timeout: TIMEOUT })).trim();

try {
  const page = context.pages()[0] || (await context.newPage());
  watch(page);
  await page.goto(url, { waitUntil: "domcontentloaded" });

  // the rollouts listed: state, target update, who created them
  const row = page.locator(`#rollouts tr[data-id="${rolledBack}"]`);
  await row.waitFor({ timeout: TIMEOUT });
  const line = await text(row);
  assert.match(line, /RolledBack/);
  assert.match(line, /Contoso\/Gateway\/2\.4\.1/);
  assert.match(line, /key:[0-9a-f]{8}/);
  assert.equal(await page.locator(`#rollouts tr[data-id="${moving}"]`).count(), 1);
  seen.who = await text(page.locator("#who"));

  // the rolled-back rollout: hosts, the failed wave with its numbers and reason
  await row.click();
  await page.locator("#d-state", { hasText: "RolledBack" }).waitFor({ timeout: TIMEOUT });
  const hosts = page.locator("#hosts tbody tr");
  seen.hosts = await hosts.allTextContents();
  assert.equal(seen.hosts.length, 4, seen.hosts.join(" | "));
  for (const host of seen.hosts) assert.match(host, /succeeded/);
  const pilot = page.locator('#waves .wave[data-wave="pilot"]');
  await pilot.waitFor({ timeout: TIMEOUT });
  assert.equal(await pilot.getAttribute("data-status"), "Failed");
  const failed = Number(await text(pilot.locator('[data-count="failed"]')));
  assert.ok(failed >= 3, `pilot shows ${failed} failed`);
  seen.failedWave = await text(pilot.locator(".reason"));
  assert.match(seen.failedWave, /\d+ of 50 failed = \d+\.\d% > 5%/);
  assert.equal(await pilot.locator(".mark").count(), 2, "success and failure thresholds drawn");
  assert.equal(await page.locator('#waves .wave[data-wave="canary"]').getAttribute("data-status"), "Passed");

  // the rollback and its progress, group by group
  await page.locator("#rollback").waitFor({ state: "visible", timeout: TIMEOUT });
  seen.rollbackReason = await text(page.locator("#rb-reason"));
  assert.match(seen.rollbackReason, /of 50 failed/);
  const groups = page.locator("#rb-groups .wave[data-group]");
  assert.equal(await groups.count(), 2);
  const pilotBack = page.locator('#rb-groups .wave[data-group="pilot"]');
  seen.rollbackPilot = await text(pilotBack);
  assert.match(seen.rollbackPilot, /4[0-9] of 50 back/);
  seen.rollbackEnd = await text(page.locator("#rb-groups > .reason"));
  assert.match(seen.rollbackEnd, /rollback finished: \d+ of 60 back on Contoso\/Gateway\/2\.4\.0/);

  // the decision log names the decisions with their reasons
  const kinds = await page.locator("#decisions tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  for (const kind of ["rollout.created", "wave.failed", "rollback.opened", "rollback.finished"]) {
    assert.ok(kinds.includes(kind), `${kind} not in the decision log: ${kinds}`);
  }

  // drill down: the devices that failed going back
  await page.selectOption("#f-status", "failed");
  const failedDevice = page.locator('#devices tbody tr[data-status="failed"]').first();
  await failedDevice.waitFor({ timeout: TIMEOUT });
  seen.failedDevice = await text(failedDevice);
  assert.match(seen.failedDevice, /^pilot-\d{4}/);
  assert.equal(await page.locator('#devices tbody tr:not([data-status="failed"])').count(), 0);
  await page.selectOption("#f-status", "");
  await page.locator('#devices tbody tr[data-status="onTarget"]').first().waitFor({ timeout: TIMEOUT });
  await page.selectOption("#f-status", "failed");
  await failedDevice.waitFor({ timeout: TIMEOUT });
  await page.screenshot({ path: screenshot, fullPage: true });

  // a key caller may operate but never approve; a finished rollout offers no command
  assert.equal(await page.locator('#commands button[data-command="approve"]').count(), 0);
  assert.equal(await page.locator("#commands button:enabled").count(), 0);

  // pause the moving rollout from the page, with a reason
  await page.locator(`#rollouts tr[data-id="${moving}"]`).click();
  const pause = page.locator('#commands button[data-command="pause"]');
  await page.locator("#d-name").filter({ hasText: "browser pause" }).waitFor({ timeout: TIMEOUT });
  await pause.waitFor({ timeout: TIMEOUT });
  assert.ok(await pause.isEnabled(), "pause offered while the rollout moves");
  await pause.click();
  await page.locator("#cf-reason").fill(reason);
  await page.locator("#cf-send").click();
  await page.locator("#alert", { hasText: "pause: accepted" }).waitFor({ timeout: TIMEOUT });
  await page.locator("#d-state", { hasText: "Paused" }).waitFor({ timeout: TIMEOUT });
  seen.paused = await text(page.locator('#decisions tbody tr[data-kind="rollout.paused"]'));
  assert.ok(seen.paused.includes(reason), seen.paused);

  // App Service Authentication: a signed-in reader sees everything and no command at all
  const readerPage = await context.newPage();
  await readerPage.setExtraHTTPHeaders({ "x-ms-client-principal": readerPrincipal });
  watch(readerPage);
  const base = new URL(url);
  base.search = "";
  base.hash = encodeURIComponent(rolledBack);
  await readerPage.goto(base.toString(), { waitUntil: "domcontentloaded" });
  await readerPage.locator('#waves .wave[data-wave="pilot"]').waitFor({ timeout: TIMEOUT });
  seen.readerWho = await text(readerPage.locator("#who"));
  assert.match(seen.readerWho, /^rita \(Rollout\.Read\)$/);
  assert.equal(await readerPage.locator("#commands button").count(), 0);

  assert.deepEqual(problems, []);
  console.log(JSON.stringify({ ok: true, seen }));
} catch (error) {
  console.error(JSON.stringify({ ok: false, error: String(error && error.stack || error), problems, seen }));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
