"""The message catalogue: every word the dashboard shows, and the names of the exchange's terms
(sharing attributes, update cycles, run, record and quarantine states), in Chinese first and in
English. One dict, MESSAGES: key -> (zh-CN, en). Templates call `t(key, lang)` (as `_()`), the
CLI and the API call `term(kind, value)` for a term's Chinese name with the technical one beside.

A key missing from the catalogue shows as the key itself, so a gap is visible, never an error;
tests/unit/base/test_i18n.py checks every key the templates use is here."""
from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

# terms: kind.value -> (Chinese, English). The technical value is the value itself.
TERMS: dict[str, tuple[str, str]] = {
    "sharing.unconditional": ("无条件共享", "unconditional"),
    "sharing.conditional": ("有条件共享", "conditional"),
    "sharing.not_shared": ("不予共享", "not shared"),
    "cycle.hourly": ("每小时", "hourly"),
    "cycle.daily": ("每日", "daily"),
    "cycle.weekly": ("每周", "weekly"),
    "cycle.monthly": ("每月", "monthly"),
    "cycle.quarterly": ("每季度", "quarterly"),
    "cycle.yearly": ("每年", "yearly"),
    "freshness.fresh": ("按时更新", "fresh"),
    "freshness.late": ("更新逾期", "late"),
    "freshness.stale": ("严重逾期", "stale"),
    "freshness.never": ("从未发布", "never"),
    "run.published": ("已发布", "published"),
    "run.unchanged": ("无变化", "unchanged"),
    "run.failed": ("失败", "failed"),
    "run.held": ("已暂停", "held"),
    "run.running": ("运行中", "running"),
    "run.approved": ("已批准", "approved"),
    "record.valid": ("有效", "valid"),
    "record.expired": ("已过期", "expired"),
    "record.revoked": ("已撤销", "revoked"),
    "record.withdrawn": ("已撤回", "withdrawn"),
    "record.superseded": ("已被取代", "superseded"),
    "record.disputed": ("有争议", "disputed"),
    "record.unknown": ("未知", "unknown"),
    "quarantine.open": ("待处理", "open"),
    "quarantine.reviewed": ("已复核", "reviewed"),
    "quarantine.resolved": ("已解决", "resolved"),
    "outcome.allowed": ("允许", "allowed"),
    "outcome.done": ("完成", "done"),
    "outcome.refused": ("拒绝", "refused"),
    "period.day": ("日", "day"),
    "period.week": ("周", "week"),
    "period.month": ("月", "month"),
    "level.ok": ("正常", "ok"),
    "level.warning": ("警告", "warning"),
    "level.critical": ("严重", "critical"),
    "role.auditor": ("审计部门", "auditor"),
    "role.consumer": ("使用部门", "consumer"),
}

MESSAGES: dict[str, tuple[str, str]] = {
    # the frame
    "app.name": ("数据共享交换", "Exchange"),
    "app.dashboard": ("数据共享交换平台", "Exchange dashboard"),
    "nav.catalogue": ("目录", "Catalogue"),
    "nav.freshness": ("更新情况", "Freshness"),
    "nav.audit": ("访问审计", "Audit"),
    "nav.scorecards": ("考核", "Scorecards"),
    "nav.logout": ("退出登录", "Log out"),
    "nav.lang_other": ("English", "中文"),
    "zone.Asia/Shanghai": ("北京时间", "Beijing time"),
    "zone.UTC": ("协调世界时", "UTC"),
    "nav.times": ("时间均为{zone}（{offset}）", "Times in {zone} ({offset})"),
    # login
    "login.title": ("登录", "Log in"),
    "login.intro": ("看板显示谁查看了谁的记录，因此仅限<b>审计部门</b>使用。请粘贴本部门的交换密钥"
                    "（<code>exk_…</code>；由运维人员用 <code>exchange credentials issue</code> 签发）。",
                    "The dashboard shows who looked at whose records, so it is for <b>auditor</b> "
                    "departments. Paste your department's exchange key (<code>exk_…</code>; the operator "
                    "issues one with <code>exchange credentials issue</code>)."),
    "login.key": ("交换密钥", "Exchange key"),
    "login.submit": ("登录", "Log in"),
    "login.again": ("重新打开登录页面", "Open the login page again"),
    "login.forged": ("表单并非来自本看板，或已过期：请重新打开登录页面并从那里登录 (forged or expired form)",
                     "the form did not come from this dashboard, or it expired: open the login page "
                     "again and log in from there"),
    "login.not_auditor": ("{department} 是{role}；看板显示访问审计，只有审计部门的密钥可以登录 "
                          "(not an auditor department)",
                          "department {department} is a {role}; the dashboard shows the access audit, "
                          "so only an auditor department's key may log in"),
    "logout.refused_title": ("未退出", "Not logged out"),
    "logout.refused": ("退出请求并非来自本看板的页面：请使用“退出登录”按钮 (forged logout)",
                       "the logout did not come from this dashboard's own page: use the Log out button"),
    # overview
    "overview.title": ("目录", "Catalogue"),
    "tile.datasets": ("数据集", "datasets"),
    "tile.records": ("已发布记录", "published records"),
    "tile.late": ("逾期、严重逾期或从未运行", "late, stale or never run"),
    "tile.backlog": ("隔离区中的行", "rows in quarantine"),
    "tile.failed": ("最近 {n} 次运行中失败", "failed of the last {n} runs"),
    "search.placeholder": ("搜索数据集：编号、名称、证照类型、部门", "search datasets: id, title, certificate type, department"),
    "search.label": ("搜索", "search"),
    "search.submit": ("搜索", "Search"),
    "search.clear": ("清除", "clear"),
    "search.count_match": ("{total} 个数据集中有 {n} 个匹配“{q}”", "{n} of {total} datasets match “{q}”"),
    "search.count": ("共 {total} 个数据集", "{total} datasets"),
    "col.dataset": ("数据集", "dataset"),
    "col.certificate_type": ("证照类型", "certificate type"),
    "col.department": ("部门", "department"),
    "col.sharing": ("共享属性", "sharing"),
    "col.freshness": ("更新情况", "freshness"),
    "col.version": ("版本", "version"),
    "col.records": ("记录数", "records"),
    "col.published": ("发布时间", "published"),
    "col.run": ("运行", "run"),
    "col.source": ("数据源", "source"),
    "col.state": ("状态", "state"),
    "col.extracted": ("抽取", "extracted"),
    "col.accepted": ("通过", "accepted"),
    "col.quarantined": ("隔离", "quarantined"),
    "col.started": ("开始时间", "started"),
    "col.reasons": ("原因", "reasons"),
    "col.links": ("链接", "links"),
    "col.cycle": ("更新周期", "cycle"),
    "col.last_refresh": ("最近更新", "last refresh"),
    "col.due": ("应更新时间", "due"),
    "col.last_run": ("最近运行", "last run"),
    "col.backlog": ("隔离积压", "quarantine backlog"),
    "empty.datasets": ("没有匹配的数据集。", "No dataset matches."),
    "empty.runs": ("尚无运行。", "No runs yet."),
    "overview.latest_runs": ("最近运行", "Latest runs"),
    # dataset page
    "meta.department": ("部门", "department"),
    "meta.steward": ("数据管理员", "steward"),
    "meta.sharing": ("共享属性", "sharing"),
    "meta.update_cycle": ("更新周期", "update cycle"),
    "meta.certificate_type": ("证照类型", "certificate type"),
    "meta.current_version": ("当前版本", "current version"),
    "meta.sources": ("数据源", "sources"),
    "dataset.trend": ("质量趋势", "Quality trend"),
    "dataset.trend_note": ("最近 {n} 次运行的通过率", "accepted share of the last {n} runs"),
    "dataset.runs": ("最近运行", "Recent runs"),
    "dataset.data_docs": ("数据质量报告", "Data Docs"),
    "dataset.quarantine": ("隔离队列", "Quarantine queue"),
    "dataset.holding": ("{n} 条待处理行使一条已发布记录被暂扣：该记录保持发布状态，在查询和记录状态中显示为"
                        "<b>有争议</b> (disputed)，直到数据管理员复核该行（<code>exchange quarantine review {dataset} KEY</code>）。",
                        "{n} open rows hold a published record back: it stays as published, shown as "
                        "<b>disputed</b> in lookups and record status, until a steward reviews the row "
                        "(<code>exchange quarantine review {dataset} KEY</code>)."),
    "col.reason_open": ("原因（待处理和已复核的行）", "reason (open and reviewed rows)"),
    "col.rows": ("行数", "rows"),
    "empty.queue": ("隔离队列为空。", "The queue is empty."),
    "col.key": ("证照编号", "key"),
    "col.silo_row": ("源系统原始行", "silo row"),
    "col.first_seen": ("首次发现", "first seen"),
    "col.disputed_record": ("有争议的记录", "disputed record"),
    "dataset.open_note": ("{n} 条待处理行，暂扣记录的在前，其余按时间先后；全部行：",
                          "{n} open rows, those holding a record back first, then the oldest; all of them:"),
    "dataset.history": ("元数据变更记录", "Metadata history"),
    "dataset.history_note": ("数据管理员、说明、部门、共享属性、更新周期", "steward, description, department, sharing, update cycle"),
    "col.when": ("时间", "when"),
    "col.field": ("字段", "field"),
    "col.from": ("原值", "from"),
    "col.to": ("新值", "to"),
    "col.by": ("操作人", "by"),
    "dataset.schema": ("数据结构", "Schema"),
    "col.type": ("类型", "type"),
    "col.title": ("名称", "title"),
    "col.required": ("必填", "required"),
    "yes": ("是", "yes"),
    "dataset.versions": ("版本", "Versions"),
    "col.root_hash": ("根哈希", "root hash"),
    "col.kid": ("签名密钥 (kid)", "key (kid)"),
    "empty.versions": ("尚未发布。", "Nothing published yet."),
    "history.field.steward": ("数据管理员", "steward"),
    "history.field.description": ("说明", "description"),
    "history.field.department": ("部门", "department"),
    "history.field.department_name": ("部门名称", "department name"),
    "history.field.sharing": ("共享属性", "sharing"),
    "history.field.update_cycle": ("更新周期", "update cycle"),
    "history.field.title": ("名称", "title"),
    # freshness
    "freshness.title": ("更新情况", "Freshness"),
    "freshness.lead": ("每个数据集与其数据源更新周期的对照：<b>按时更新</b>（周期内已更新）、<b>更新逾期</b>（已过应更新时间）、"
                       "<b>严重逾期</b>（逾期超过一个周期）、<b>从未发布</b>（尚无发布版本）。",
                       "Each dataset against its source's update cycle: <b>fresh</b> (refreshed within its cycle), "
                       "<b>late</b> (past due), <b>stale</b> (well past due), <b>never</b> (no version published yet)."),
    "empty.registered": ("尚无登记的数据集。", "No datasets registered."),
    # unloaded registrations
    "unloaded.title": ("未能加载的登记文件（{n}）", "Registration files not loaded ({n})"),
    "unloaded.lead": ("这些数据源在文件修好之前没有 DAG（<span class=\"mono\">exchange register FILE --dry-run</span> 逐步说明原因）。",
                      "Their sources have no DAG until the file is mended (<span class=\"mono\">exchange register "
                      "FILE --dry-run</span> says why, step by step)."),
    "unloaded.source": ("数据源", "source"),
    # scorecards
    "scorecards.title": ("部门考核", "Department scorecards"),
    "scorecards.lead": ("数据共享纳入绩效考核。", "Data sharing counts in each department's performance review (数据共享纳入绩效考核)."),
    "col.datasets": ("数据集", "datasets"),
    "col.on_time": ("按时率", "on time"),
    "col.quality_pass": ("质量通过率", "quality pass"),
    "col.runs": ("运行次数", "runs"),
    "col.runs_failed": ("失败运行", "runs failed"),
    "col.datasets_failing": ("最近运行失败的数据集", "datasets failing"),
    "col.oldest_days": ("最久积压（天）", "oldest (days)"),
    "col.records_consumed": ("被使用记录", "records consumed"),
    "col.materials_saved": ("免交材料", "materials saved"),
    "empty.departments": ("没有拥有数据集的部门。", "No departments with datasets."),
    "error.period_title": ("未知周期", "Unknown period"),
    "error.period": ("周期为 {periods} 之一，而不是 {given} (unknown period)", "period is one of {periods}, not {given}"),
    # audit
    "audit.title": ("访问审计", "Access audit"),
    "audit.chain_ok": ("哈希链校验通过：{n} 条记录未被篡改。", "The hash chain verifies: {n} entries unaltered."),
    "audit.chain_bad": ("哈希链在第 {seq} 条记录处校验失败：{problem}。", "The hash chain does NOT verify at entry {seq}: {problem}."),
    "audit.holder": ("持证主体编号", "holder id"),
    "audit.holder_placeholder": ("统一社会信用代码或居民身份证号", "USCC or resident ID"),
    "audit.any": ("全部", "any"),
    "audit.unauthenticated": ("-（未认证）", "- (unauthenticated)"),
    "audit.purpose": ("用途", "purpose"),
    "audit.purpose_placeholder": ("事项编码或 case:…", "item code or case:…"),
    "audit.action": ("操作", "action"),
    "audit.since": ("起", "from"),
    "audit.until": ("止", "to"),
    "audit.count": ("共 {total} 条记录匹配", "{total} entries match"),
    "audit.showing": ("；显示 {n} 条", "; showing {n}"),
    "audit.older_than": ("（序号 {seq} 之前）", " older than seq {seq}"),
    "audit.newest_first": ("，最新的在前", ", newest first"),
    "col.seq": ("序号", "seq"),
    "col.time": ("时间", "time"),
    "col.purpose": ("用途", "purpose"),
    "col.action": ("操作", "action"),
    "col.holder": ("持证主体", "holder"),
    "col.outcome": ("结果", "outcome"),
    "col.detail": ("详情", "detail"),
    "empty.audit": ("没有匹配的记录。", "No entry matches."),
    "pager.newest": ("‹ 最新", "‹ newest"),
    "pager.older": ("更早 ›", "older ›"),
    "error.date": ("{name} 应为 YYYY-MM-DD 格式的日期，而不是 {given} (not a date)", "{name} is a date as YYYY-MM-DD, not {given}"),
    # data docs
    "docs.title": ("运行 {run} 的数据质量报告", "Data Docs of run {run}"),
    "docs.lead": ("Great Expectations 对本次运行校验结果的报告：每条校验规则、未通过的行数及其值。页面原样来自 GX，"
                  "样式取自公共 CDN，因此无网络时页面朴素但内容完整。",
                  "Great Expectations' report of what this run's validation found: every expectation, how many rows "
                  "failed it and which values. The pages come from GX as they are; they load their styles from public "
                  "CDNs, so without network they are plain but complete."),
    "docs.home": ("GX 数据质量报告首页", "GX Data Docs home"),
    "docs.home_note": ("（其列表需要网络）", "(its list needs network)"),
    "docs.missing_title": ("没有该质量报告页面", "No such Data Docs page"),
    "docs.missing": ("运行 {run} 没有质量报告{sub}（校验前就失败的运行没有报告） (no Data Docs)",
                     "run {run} has no Data Docs{sub} (a run that failed before validation has none)"),
    # errors
    "error.back": ("返回目录", "Back to the catalogue"),
    "error.no_dataset": ("没有该数据集", "No such dataset"),
    # quarantine reasons: what is wrong with the row, what the source should fix ({field}: the
    # field's title; quality/reasons.py adds the expectation's technical name beside)
    "reason.expect_column_values_to_not_be_null": (
        "{field}为空，请源部门补填该项", "{field} is missing: the source should fill it in"),
    "reason.expect_column_values_to_not_be_blank_when_normalised": (
        "{field}为空白或占位值（如“无”“NULL”），请源部门填写实际内容",
        "{field} is blank or a placeholder (无, NULL …): the source should enter the real value"),
    "reason.expect_column_values_to_be_valid_uscc": (
        "{field}不是有效的统一社会信用代码（校验位或字符错误），请源部门核对并更正该代码",
        "{field} is not a valid unified social credit code (wrong check character or letters): "
        "the source should check and correct the code"),
    "reason.expect_column_values_to_be_valid_ric": (
        "{field}不是有效的居民身份证号码（校验位或出生日期错误），请源部门核对并更正该号码",
        "{field} is not a valid resident ID number (wrong check digit or birth date): the source "
        "should check and correct the number"),
    "reason.expect_column_values_to_be_in_set": (
        "{field}的取值不在允许的代码表内，请源部门按标准代码填写",
        "{field} is not one of the allowed codes: the source should use the standard code"),
    "reason.expect_column_values_to_not_be_in_set": (
        "{field}是不允许使用的值，请源部门更正", "{field} holds a value that is not allowed: the source should correct it"),
    "reason.expect_column_values_to_be_parsable_dates": (
        "{field}不是可识别的真实日期，请源部门按 YYYY-MM-DD 填写",
        "{field} is not a real date in a known form: the source should write it as YYYY-MM-DD"),
    "reason.expect_column_values_to_not_be_in_the_future": (
        "{field}晚于当日（未来日期），请源部门核对该日期",
        "{field} is later than today (a future date): the source should check the date"),
    "reason.expect_column_values_to_be_unique": (
        "{field}在本批数据中重复，请源部门核对并去除重复记录",
        "{field} occurs more than once in this export: the source should remove the duplicates"),
    "reason.expect_compound_columns_to_be_unique": (
        "{field}的组合在本批数据中重复，请源部门核对并去除重复记录",
        "the combination of {field} occurs more than once: the source should remove the duplicates"),
    "reason.expect_column_pair_values_a_to_be_greater_than_b": (
        "{field}应晚于（大于）{other}，请源部门核对这两项",
        "{field} should be later than (greater than) {other}: the source should check both"),
    "reason.expect_column_values_to_match_regex": (
        "{field}的格式不符合要求，请源部门按规定格式填写",
        "{field} is not in the required format: the source should correct it"),
    "reason.expect_column_values_to_not_match_regex": (
        "{field}含有不允许的内容，请源部门更正", "{field} contains text that is not allowed: the source should correct it"),
    "reason.expect_column_value_lengths_to_equal": (
        "{field}的长度不符合要求，请源部门核对", "{field} has the wrong length: the source should check it"),
    "reason.expect_column_value_lengths_to_be_between": (
        "{field}的长度超出允许范围，请源部门核对", "{field} is too short or too long: the source should check it"),
    "reason.expect_column_values_to_be_between": (
        "{field}超出允许范围，请源部门核对", "{field} is out of the allowed range: the source should check it"),
    "reason.other": (
        "{field}未通过校验规则，请源部门核对该项", "{field} fails a check: the source should check it"),
    "reason.field_sep": ("、", ", "),
    # charts
    "chart.no_runs": ("尚无带计数的运行。", "No runs with counts yet."),
    "chart.nothing": ("没有可绘制的内容。", "Nothing to chart."),
    "chart.accepted": ("通过", "accepted"),
    "chart.per_department": ("各部门", "per department"),
}


def pick(lang: str | None) -> str:
    """A language this catalogue has (zh-CN, zh_TW, en-GB … by their first part), else Chinese."""
    code = (lang or "").strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGS else DEFAULT_LANG


def t(key: str, lang: str = DEFAULT_LANG, **values: object) -> str:
    """The message `key` in `lang`, with {names} filled in; the key itself when missing."""
    pair = MESSAGES.get(key) or TERMS.get(key)
    text = key if pair is None else pair[LANGS.index(pick(lang))]
    return text.format(**values) if values else text


def term(kind: str, value: str | None, lang: str = DEFAULT_LANG) -> str:
    """A term's name in `lang` (sharing, cycle, freshness, run, record, quarantine, outcome …);
    an unknown value passes through as it is."""
    if value is None:
        return "–"
    pair = TERMS.get(f"{kind}.{value}")
    return value if pair is None else pair[LANGS.index(pick(lang))]


def term_both(kind: str, value: str | None) -> str:
    """Chinese first, the technical value beside: `无条件共享 (unconditional)`."""
    name = term(kind, value, "zh")
    return name if value is None or name == value else f"{name} ({value})"
