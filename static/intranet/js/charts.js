// Beacon's one chart renderer. Charts are data: the server embeds each figure's JSON
// (plotly's fig.to_json(), template="none") in
//   <script type="application/json" class="intranet-chart" data-target="ID">...</script>
// and this static script draws it into the element with that id. A JSON block is never
// executed, so pages need no inline script, and the strict plotly.js bundle needs no
// 'unsafe-eval': the Content-Security-Policy can stay at script-src 'self'.
//
// Load order: vendor/plotly-strict.min.js, then this file.
(function () {
  "use strict";

  // Fixed here, not taken from the figure JSON, so a figure cannot turn on links or editing.
  // No "Share chart" button: it would send the data to Plotly's cloud. The camera button downloads
  // the chart as a PNG, named after the chart.
  function config(id) {
    return {
      displaylogo: false, responsive: true, showLink: false, showSendToCloud: false,
      showEditInChartStudio: false, plotlyServerURL: "", displayModeBar: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
      toImageButtonOptions: { format: "png", filename: "beacon-" + id.replace(/^chart-/, ""), scale: 2 }
    };
  }

  function render(block) {
    var id = block.getAttribute("data-target") || "";
    var target = document.getElementById(id);
    if (!target) {
      console.error("Beacon charts: no element with id %o for a chart block", id);
      return;
    }
    var figure;
    try {
      figure = JSON.parse(block.textContent);
    } catch (error) {
      console.error("Beacon charts: the figure for #%s is not valid JSON: %s", id, error);
      return;
    }
    block.setAttribute("data-rendered", "");
    window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, config(id)).catch(function (error) {
      console.error("Beacon charts: plotly could not draw #%s: %s", id, error);
    });
  }

  // Draw every chart block under `root` (default: the document) that is not drawn yet.
  function renderCharts(root) {
    if (!window.Plotly) {
      console.error("Beacon charts: plotly.js is not loaded; include vendor/plotly-strict.min.js first");
      return;
    }
    var blocks = (root || document).querySelectorAll(
      'script[type="application/json"].intranet-chart:not([data-rendered])'
    );
    Array.prototype.forEach.call(blocks, render);
  }

  window.Beacon = window.Beacon || {};
  window.Beacon.renderCharts = renderCharts;

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderCharts(); });
  } else {
    renderCharts();
  }
})();
