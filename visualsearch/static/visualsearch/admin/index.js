/* "Visual index" admin page: live progress of reindex jobs, without reloading.
 *
 * Polls the page's JSON status endpoint every second while a job is queued or running
 * (every five seconds otherwise, so a job started elsewhere still shows up) and updates
 * the progress bars, statuses and messages in place. When a job finishes, the index
 * counts are fetched once more. A job whose status changes is announced in the page's one
 * live region, with its number and message (templates from the page, translated there).
 */
(function () {
  "use strict";
  const root = document.getElementById("vs-index");
  if (!root) return;
  const url = root.dataset.statusUrl;
  const seen = new Set();
  document.querySelectorAll(".vs-progress[data-job-id]").forEach(el => seen.add(Number(el.dataset.jobId)));
  let wasActive = document.querySelector('.vs-progress[data-active="1"]') !== null;
  const announcer = document.getElementById("vs-announce");
  const statuses = new Map();
  let changes = [];
  document.querySelectorAll("[data-job-status]").forEach(el =>
    statuses.set(Number(el.dataset.jobStatus), el.className.replace(/.*vs-status-/, "")));
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (all, name) => (name in values ? String(values[name]) : all));

  function setText(selector, text) {
    const el = document.querySelector(selector);
    if (el && el.textContent !== text) el.textContent = text;
    return el;
  }

  function updateJob(job) {
    const bar = document.querySelector(`.vs-progress[data-job-id="${job.id}"]`);
    if (!bar) {
      const notice = document.getElementById("vs-new-job");
      if (!seen.has(job.id) && job.active && notice.hidden) {
        notice.hidden = false;
        changes.push(root.dataset.newJob);
      }
      return;
    }
    bar.dataset.active = job.active ? "1" : "0";
    bar.querySelector(".vs-bar span").style.width = job.percent + "%";
    bar.querySelector(".vs-bar").setAttribute("aria-valuenow", job.percent);
    bar.querySelector(".vs-bar").setAttribute("aria-valuetext", fill(root.dataset.valuetext, job));
    bar.querySelector(".vs-count").textContent = `${job.done} / ${job.total}`;
    const status = setText(`[data-job-status="${job.id}"]`, job.status_label);
    if (status) status.className = `vs-status vs-status-${job.status}`;
    setText(`[data-job-message="${job.id}"]`, job.message);
    // error_label comes translated (and pluralised) from the status endpoint.
    if (job.error_count) setText(`[data-job-errors="${job.id}"]`, job.error_label);
    if (statuses.has(job.id) && statuses.get(job.id) !== job.status) {
      changes.push(fill(root.dataset.announce, { ...job, status: job.status_label }));
    }
    statuses.set(job.id, job.status);
  }

  function updateCounts(rows) {
    rows.forEach(row => {
      const tr = root.querySelector(`tr[data-encoder="${CSS.escape(row.encoder)}"]`);
      if (!tr) return;
      ["indexed", "stale", "missing", "failed", "total", "no_image"].forEach(key => {
        const td = tr.querySelector(`[data-count="${key}"]`);
        if (td) td.textContent = row[key];
      });
    });
  }

  let tick = 0;
  let countsDue = false;

  async function poll() {
    let active = wasActive;
    tick += 1;
    try {
      // Counts cost more than job rows: every fifth poll while a job runs, and once after.
      const withCounts = countsDue || (wasActive && tick % 5 === 0);
      const response = await fetch(url + (withCounts ? "?counts=1" : ""), {
        headers: { Accept: "application/json" }, credentials: "same-origin",
      });
      if (response.ok) {
        const data = await response.json();
        changes = [];
        data.jobs.forEach(updateJob);
        // Every job that changed in this poll, in one announcement.
        if (changes.length && announcer) announcer.textContent = changes.join(" ");
        if (data.counts) updateCounts(data.counts);
        active = data.active;
        countsDue = wasActive && !active && !data.counts;
      }
    } catch (err) {
      // A failed poll (server restarting) is retried on the next tick.
    }
    wasActive = active;
    setTimeout(poll, active ? 1000 : 5000);
  }
  setTimeout(poll, wasActive ? 1000 : 5000);
})();
