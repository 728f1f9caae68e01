/* archlab charts: draws the specs services/ui/charts.py writes into <div class="chart" data-spec="...">
   with Apache ECharts. The browser computes nothing the lab knows (layout, running best and colours
   come in the spec); every text that reaches a tooltip passes through esc(). */
(function () {
  'use strict';
  var ESCAPES = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};
  function esc(s) { return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) { return ESCAPES[c]; }); }
  function num(x, d) { return (x === null || x === undefined) ? '–' : Number(x).toFixed(d === undefined ? 3 : d); }
  var PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

  function axes(spec, xType) {
    return {
      grid: {left: 60, right: 24, top: 30, bottom: 50},
      xAxis: {type: xType || 'value', name: spec.x_label || '', nameLocation: 'middle', nameGap: 28, scale: true},
      yAxis: {type: 'value', name: spec.y_label || '', nameLocation: 'middle', nameGap: 44, scale: true},
      animation: false
    };
  }
  function zoom() { return [{type: 'inside', xAxisIndex: 0, filterMode: 'none'}, {type: 'inside', yAxisIndex: 0, filterMode: 'none'}]; }

  var BUILD = {
    fitness: function (spec) {
      var o = axes(spec);
      o.tooltip = {trigger: 'item', formatter: function (p) {
        if (!p.data || !p.data.id) { return esc(p.seriesName); }
        return esc(p.data.name) + '<br>' + esc(p.data.id) + '<br>fitness ' + num(p.data.value[1], 4);
      }};
      o.legend = {top: 0};
      o.dataZoom = zoom();
      var cand = spec.points.filter(function (p) { return !p.baseline; });
      var base = spec.points.filter(function (p) { return p.baseline; });
      o.series = [
        {name: 'candidate', type: 'scatter', data: cand, symbolSize: 9, itemStyle: {color: '#21918c'}},
        {name: 'baseline', type: 'scatter', data: base, symbol: 'diamond', symbolSize: 12, itemStyle: {color: '#333'}},
        {name: 'best so far', type: 'line', data: spec.best, step: 'end', symbol: 'none', lineStyle: {color: '#e45756', width: 2}}
      ];
      if (spec.baseline !== null && spec.baseline !== undefined) {
        o.series[1].markLine = {symbol: 'none', silent: true, label: {show: false},
          lineStyle: {type: 'dashed', color: '#555'}, data: [{yAxis: spec.baseline}]};
      }
      return o;
    },
    lineage: function (spec) {
      var o = axes(spec);
      o.grid = {left: 20, right: 20, top: 20, bottom: 20};
      o.xAxis = {type: 'value', show: false, min: -0.3};
      o.yAxis = {type: 'value', show: false, inverse: true, min: -1};
      o.dataZoom = zoom();
      o.tooltip = {trigger: 'item', formatter: function (p) {
        if (!p.data || !p.data.id) { return ''; }
        return esc(p.data.name) + '<br>' + esc(p.data.id) + '<br>' + esc(p.data.kind) + ', ' + esc(p.data.status || 'n/a') +
          '<br>fitness ' + num(p.data.fitness, 4);
      }};
      o.series = [
        {name: 'edges', type: 'line', data: spec.edges, symbol: 'none', silent: true, connectNulls: false,
         lineStyle: {color: '#9aa3ad', width: 1}},
        {name: 'experiments', type: 'scatter', data: spec.points, symbolSize: 11,
         itemStyle: {borderColor: '#333', borderWidth: 1},
         label: {show: !!spec.labels, position: 'right', fontSize: 11, formatter: function (p) { return p.data.name; }}}
      ];
      return o;
    },
    curves: function (spec) {
      var o = axes(spec);
      o.tooltip = {trigger: 'axis', formatter: function (ps) {
        return ps.map(function (p) { return esc(p.seriesName) + ': ' + num(p.value[1], 4); }).join('<br>');
      }};
      o.legend = {type: 'scroll', top: 0, formatter: function (n) { return n; }};
      o.dataZoom = zoom();
      o.series = spec.series.map(function (s, i) {
        return {name: s.name, type: 'line', data: s.points, showSymbol: false,
                lineStyle: {width: s.baseline ? 2.5 : 1.5, type: s.baseline ? 'dashed' : 'solid',
                            color: s.baseline ? '#333' : PALETTE[i % PALETTE.length]},
                itemStyle: {color: s.baseline ? '#333' : PALETTE[i % PALETTE.length]}};
      });
      return o;
    },
    bars: function (spec) {
      var o = axes(spec, 'category');
      o.xAxis.data = spec.categories;
      o.yAxis.scale = false;   // bars start at zero
      o.xAxis.axisLabel = {interval: 0, rotate: spec.categories.length > 6 ? 30 : 0};
      o.tooltip = {trigger: 'axis', formatter: function (ps) {
        return esc(ps.length ? ps[0].axisValue : '') + '<br>' +
          ps.map(function (p) { return esc(p.seriesName) + ': ' + num(p.value, 4); }).join('<br>');
      }};
      o.legend = {type: 'scroll', top: 0};
      o.series = spec.series.map(function (s) { return {name: s.name, type: 'bar', data: s.values}; });
      return o;
    },
    scatter: function (spec) {
      var o = axes(spec);
      o.legend = {top: 0};
      o.dataZoom = zoom();
      o.tooltip = {trigger: 'item', formatter: function (p) { return esc(p.data.name) + '<br>' + esc(p.data.id) + '<br>' + esc(p.seriesName); }};
      o.series = spec.groups.map(function (g, i) {
        return {name: g.name, type: 'scatter', data: g.points, symbolSize: 8, itemStyle: {color: PALETTE[i % PALETTE.length]}};
      });
      return o;
    }
  };

  function render(el) {
    var spec = JSON.parse(el.getAttribute('data-spec'));
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: 'canvas'});
    chart.setOption(BUILD[spec.kind](spec), true);
    chart.off('click');
    if (spec.href) {
      chart.on('click', function (p) {
        if (p.data && p.data.id) { window.location.href = spec.href.replace('{id}', encodeURIComponent(p.data.id)); }
      });
    }
    return chart;
  }

  function renderAll(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll('.chart[data-spec]'), render);
  }

  window.archlabCharts = {render: render, renderAll: renderAll, esc: esc};
  window.addEventListener('resize', function () {
    Array.prototype.forEach.call(document.querySelectorAll('.chart[data-spec]'), function (el) {
      var c = echarts.getInstanceByDom(el);
      if (c) { c.resize(); }
    });
  });
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { renderAll(); });
  } else {
    renderAll();
  }
})();
