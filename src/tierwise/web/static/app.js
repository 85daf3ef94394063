// Tierwise dashboard: draws the Plotly figures of the page (JSON data blocks) and starts runs.
(function () {
  "use strict";

  function localLink(value) {
    return typeof value === "string" && value.charAt(0) === "/" && value.charAt(1) !== "/" &&
      value.charAt(1) !== "\\";
  }

  function drawCharts() {
    if (!window.Plotly) { return; }
    var holders = document.querySelectorAll("[data-figure]");
    Array.prototype.forEach.call(holders, function (holder) {
      var source = document.getElementById(holder.getAttribute("data-figure"));
      if (!source) { return; }
      var figure = JSON.parse(source.textContent);
      var config = { displaylogo: false, responsive: true,
                     modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };
      window.Plotly.newPlot(holder, figure.data, figure.layout, config).then(function () {
        holder.setAttribute("data-drawn", "true");
      });
      if (figure.clickable) {
        holder.on("plotly_click", function (event) {
          var point = event.points && event.points[0];
          var link = point && point.customdata && point.customdata[0];
          if (localLink(link)) { window.location.assign(link); }
        });
      }
    });
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, key) {
      return values[key] === undefined ? "" : String(values[key]);
    });
  }

  function runStarter() {
    var button = document.getElementById("start-run");
    if (!button) { return; }
    var status = document.getElementById("run-status");
    var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

    function show(text, state) {
      status.textContent = text;
      status.className = state || "";
    }

    function failed(message) {
      show(fill(button.getAttribute("data-failed"), { error: message }), "failed");
      button.disabled = false;
    }

    function answer(response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error(body.detail || response.statusText); }
        return body;
      });
    }

    function poll(jobId, started) {
      fetch("/api/v1/runs/jobs/" + encodeURIComponent(jobId), { credentials: "same-origin" })
        .then(answer)
        .then(function (job) {
          if (job.status === "running") {
            var seconds = Math.round((Date.now() - started) / 1000);
            show(fill(button.getAttribute("data-running"), { seconds: seconds }), "running");
            window.setTimeout(function () { poll(jobId, started); }, 1000);
          } else if (job.status === "succeeded") {
            show(fill(button.getAttribute("data-done"), { run: job.run_id }), "done");
            var reload = document.createElement("a");
            reload.href = window.location.pathname;
            reload.textContent = " " + button.getAttribute("data-reload");
            status.appendChild(reload);
            button.disabled = false;
          } else {
            failed(job.error || job.status);
          }
        })
        .catch(function (error) { failed(error.message); });
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      show(button.getAttribute("data-starting"), "running");
      fetch("/api/v1/runs", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }
      })
        .then(answer)
        .then(function (job) { poll(job.job_id, Date.now()); })
        .catch(function (error) { failed(error.message); });
    });
  }

  function start() { drawCharts(); runStarter(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
