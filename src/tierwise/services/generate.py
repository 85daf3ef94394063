"""Synthetic demo data with known ground truth: `tierwise generate`.

Demos need data that looks like a Chinese retailer's exports (GB18030 CSVs with Chinese headers,
Parquet order lines, behaviour logs), and model tests need the latent truth the data was drawn
from. Purchases follow a BG/NBD process and order values a Gamma-Gamma process; per-customer
parameters go to `truth.parquet` so estimators can be checked for recovery.

Everything is vectorised with numpy (no per-order Python loops) and driven by one seeded
generator, so the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

Progress = Callable[[str, float], None]

DAY = 86_400


@dataclass(frozen=True)
class Population:
    """Hyperparameters of the simulated customer base (also written to truth.parquet metadata).

    The defaults give ≈ 10 order lines per customer, about a quarter one-time buyers among buyers
    and a long tail of loyal repeaters, so every R×F cell of quantile RFM is populated.
    """

    years: float = 3.0
    """Acquisitions are spread over this many years before `end`."""
    growth: float = 0.8
    """Acquisitions grow exponentially: the last day sees e^growth times the first day's."""
    never_buy: float = 0.10
    """Share of registered customers who never order (lifecycle stage `potential`)."""
    r: float = 0.55
    alpha: float = 20.0
    """Purchase rate λ per day ~ Gamma(shape r, rate alpha)."""
    a: float = 1.0
    b: float = 6.0
    """Dropout probability after each repeat purchase p ~ Beta(a, b)."""
    spend_p: float = 6.0
    spend_q: float = 4.0
    spend_gamma: float = 150.0
    """Order value ~ Gamma(spend_p, rate ν); per customer ν ~ Gamma(spend_q, rate spend_gamma)."""
    unresolved_rate: float = 0.06
    """Share of buyers left with an unresolved complaint soon after their first order."""
    churn_effect: float = 0.4
    """Each unresolved complaint cuts the survival chance 1 − p by this fraction."""
    lines_per_order: tuple[float, ...] = (0.45, 0.3, 0.15, 0.1)
    """Probability of 1, 2, 3 or 4 lines in an order."""
    event_days: int = 180
    """Behaviour logs reach back this many days from `end`."""


POPULATION = Population()


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    config: Path
    rows: Mapping[str, int]
    """Rows written per table, truth included."""
    seconds: float


# Category, weight, median list price (CNY), COGS ratio, return rate, item words.
_CATEGORIES = (
    ("数码", 8, 1200, 0.82, 0.04, "手机 耳机 平板 充电宝 智能手表"),
    ("家电", 5, 1500, 0.80, 0.03, "空调 洗衣机 电饭煲 吸尘器 空气净化器"),
    ("服饰", 12, 180, 0.45, 0.10, "T恤 连衣裙 衬衫 外套 牛仔裤"),
    ("鞋靴", 6, 260, 0.50, 0.09, "运动鞋 皮鞋 靴子 凉鞋 帆布鞋"),
    ("箱包", 3, 320, 0.45, 0.06, "双肩包 行李箱 手提包 钱包"),
    ("美妆", 9, 220, 0.40, 0.03, "口红 面霜 精华 粉底液 面膜"),
    ("个护", 6, 60, 0.55, 0.02, "洗发水 牙膏 沐浴露 剃须刀"),
    ("食品", 10, 45, 0.70, 0.01, "坚果 饼干 咖啡 茶叶 方便面"),
    ("生鲜", 5, 80, 0.75, 0.01, "牛排 水果 海鲜 鸡蛋 蔬菜"),
    ("酒水", 4, 200, 0.60, 0.01, "白酒 红酒 啤酒 饮料"),
    ("母婴", 6, 150, 0.60, 0.03, "奶粉 纸尿裤 婴儿车 奶瓶"),
    ("玩具", 3, 120, 0.55, 0.03, "积木 拼图 遥控车 毛绒玩具"),
    ("家居", 6, 160, 0.55, 0.04, "四件套 收纳箱 台灯 枕头 毛巾"),
    ("运动", 4, 240, 0.50, 0.05, "瑜伽垫 跑步机 哑铃 球拍"),
    ("图书", 4, 45, 0.65, 0.01, "小说 绘本 教辅 传记"),
    ("宠物", 3, 90, 0.60, 0.02, "猫粮 狗粮 猫砂 宠物玩具"),
    ("珠宝", 1.5, 2200, 0.70, 0.05, "项链 手镯 戒指 耳环"),
    ("医药保健", 3, 150, 0.55, 0.01, "维生素 钙片 蛋白粉 血压计"),
    ("办公", 2, 90, 0.65, 0.02, "打印纸 签字笔 文件夹 计算器"),
    ("汽车用品", 2, 180, 0.60, 0.03, "行车记录仪 脚垫 车载充电器 洗车液"),
)
_BRAND_SYLLABLES = "华美优星悦禾康睿安嘉尚品源云雅佳恒晨乐盛"
_BRANDS_PER_CATEGORY = 6

# Province, weight, cities (the first city is the most populous).
_REGIONS = (
    ("广东", 12, "广州 深圳 东莞 佛山"),
    ("浙江", 8, "杭州 宁波 温州"),
    ("江苏", 9, "南京 苏州 无锡"),
    ("北京", 6, "北京"),
    ("上海", 6, "上海"),
    ("山东", 7, "济南 青岛 烟台"),
    ("四川", 6, "成都 绵阳"),
    ("湖北", 5, "武汉 宜昌"),
    ("河南", 6, "郑州 洛阳"),
    ("福建", 5, "福州 厦门 泉州"),
    ("湖南", 4, "长沙 株洲"),
    ("天津", 3, "天津"),
    ("重庆", 3, "重庆"),
    ("陕西", 3, "西安"),
    ("辽宁", 3, "沈阳 大连"),
    ("安徽", 4, "合肥 芜湖"),
    ("河北", 4, "石家庄 保定"),
    ("江西", 2, "南昌"),
    ("广西", 2, "南宁 桂林"),
    ("云南", 2, "昆明"),
)
_CITIES = [city for _, _, cities in _REGIONS for city in cities.split()]
_STORES_PER_CITY = 2
_MANAGERS_PER_REGION = 2  # 20 regions: am001..am040

# Acquisition channel, weight, mean acquisition cost (CNY), weight of the store channel in orders.
_ACQUISITION = (
    ("搜索广告", 0.20, 85.0, 1.0),
    ("信息流广告", 0.20, 65.0, 1.0),
    ("直播带货", 0.15, 45.0, 1.0),
    ("社交裂变", 0.15, 25.0, 1.0),
    ("线下门店", 0.10, 30.0, 4.0),
    ("自然流量", 0.20, 0.0, 1.0),
)
# Surname, pinyin (for e-mail handles), weight.
_SURNAMES = (
    ("王", "wang", 7.1),
    ("李", "li", 7.0),
    ("张", "zhang", 6.7),
    ("刘", "liu", 5.4),
    ("陈", "chen", 4.5),
    ("杨", "yang", 3.1),
    ("黄", "huang", 2.2),
    ("赵", "zhao", 2.0),
    ("吴", "wu", 1.9),
    ("周", "zhou", 1.9),
    ("徐", "xu", 1.5),
    ("孙", "sun", 1.4),
    ("马", "ma", 1.3),
    ("朱", "zhu", 1.3),
    ("胡", "hu", 1.2),
    ("郭", "guo", 1.1),
    ("何", "he", 1.0),
    ("林", "lin", 1.0),
    ("高", "gao", 1.0),
    ("罗", "luo", 0.9),
    ("郑", "zheng", 0.9),
    ("梁", "liang", 0.8),
    ("谢", "xie", 0.7),
    ("宋", "song", 0.6),
    ("唐", "tang", 0.6),
    ("欧阳", "ouyang", 0.1),
)
_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力浩宇轩子涵欣怡梓睿思雨晨博"
)
_MAIL_DOMAINS = ("163.com", "126.com", "sina.com", "outlook.com", "gmail.com", "foxmail.com")
_PHONE_PREFIXES = tuple(
    str(x) for x in (*range(130, 140), *range(150, 160), 177, *range(180, 190), 199) if x != 154
)
_AGE_BANDS = (("18-24", 0.18), ("25-34", 0.34), ("35-44", 0.25), ("45-54", 0.14), ("55+", 0.09))
_INCOME_BANDS = (("5k以下", 0.25), ("5k-10k", 0.38), ("10k-20k", 0.25), ("20k以上", 0.12))
_NOTES = (
    "老客户推荐",
    "企业采购",
    "要求开具发票",
    "偏好晚间配送",
    "VIP，优先处理",
    "地址变更过, 请核对",
)

_CHANNELS = ("app", "web", "store", "mini_program")
_STORE = 2
_ONLINE = [0, 1, 3]
_CHANNEL_PREF = np.array([4.0, 2.0, 1.5, 3.0])
_DISCOUNTS = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
_DISCOUNT_P = np.array([0.45, 0.15, 0.15, 0.1, 0.1, 0.05])
_FESTIVE_DISCOUNT_P = np.array([0.05, 0.1, 0.25, 0.25, 0.2, 0.15])
_WEEKDAY = np.array([0.92, 0.9, 0.93, 0.95, 1.05, 1.2, 1.15])  # Monday first
_ONLINE_HOURS = np.array(
    [
        3,
        1.5,
        0.8,
        0.5,
        0.4,
        0.5,
        1,
        2,
        3.5,
        4.5,
        5,
        5.5,
        6,
        5,
        4.5,
        4.5,
        4.5,
        5,
        5.5,
        6.5,
        8,
        9,
        8,
        5.5,
    ]
)
_STORE_HOURS = np.array([0] * 9 + [1, 3, 4, 4, 3.5, 4, 4.5, 4.5, 5, 6, 6.5, 5.5, 3, 0, 0])
_OFFICE_HOURS = np.array([0] * 9 + [4, 5, 5, 3, 4, 5, 5, 4.5, 4, 2, 1.5, 1, 0.5, 0, 0])

_EVENT_TYPES = ("view", "search", "cart", "visit", "click")
_VIEW, _SEARCH, _CART, _VISIT, _CLICK = range(len(_EVENT_TYPES))
_KINDS = ("consultation", "complaint", "follow_up", "call", "email", "visit")
_SERVICE_CHANNELS = ("phone", "online_chat", "wechat", "email", "store")
_OUTCOMES = (
    "answered",
    "transferred",
    "resolved",
    "refunded",
    "replaced",
    "pending",
    "satisfied",
    "no_response",
    "reached",
    "no_answer",
    "sent",
    "opened",
    "completed",
)
_SERVICE_STAFF = 20
_SURVEYS = ("post_purchase", "service", "annual_nps")
_PRAISE = ("物流很快，包装完好", "质量不错，会回购", "客服态度很好", "性价比高", "Great service!")
_NEUTRAL = ("还可以", "一般般", "价格有点贵, 但质量还行", "配送慢了一天")
_COMPLAINTS = (
    "客服回复太慢",
    "商品与描述不符",
    "退货流程复杂",
    '包装破损，"全新"是假的',
    "再也不买了",
)
# Campaign medium, cost per contacted customer (mean, CNY).
_CAMPAIGNS = (("sms", 0.06), ("email", 0.02), ("coupon", 4.0))


def generate(
    customers: int,
    out: Path,
    *,
    seed: int = 0,
    end: date = date(2026, 6, 30),
    progress: Progress | None = None,
) -> GenerateResult:
    """Write the demo tables, truth.parquet and tierwise.toml into `out`.

    Every timestamp falls on or before `end` (at the latest `end` 23:59:59).
    `progress(stage, fraction)` reports overall completion between 0 and 1.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    started = time.perf_counter()
    report = progress or (lambda stage, fraction: None)
    pop = POPULATION
    rng = np.random.default_rng(seed)
    clock = _Clock(end, round(pop.years * 365.25))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    rows: dict[str, int] = {}

    def save(name: str, table: pa.Table, encoding: str = "parquet") -> None:
        """Write each table as soon as it is built, so they are not all held at once."""
        if encoding == "parquet":
            pq.write_table(table, out / f"{name}.parquet", compression="zstd")
        else:
            _write_csv(table, out / f"{name}.csv", encoding)
        rows[name] = table.num_rows

    report("products", 0.0)
    cat = _catalogue(rng, customers)
    save("products", cat.table, "utf-8-sig")
    report("orders", 0.05)
    cust = _customers(rng, pop, clock, customers)
    orders = _orders(rng, clock, cust)
    _register(rng, clock, cust, orders)
    lines = _lines(rng, pop, clock, cust, cat, orders)
    save("orders", _orders_table(cust, cat, orders, lines))
    report("events", 0.45)
    save("events", _events(rng, pop, clock, cust, cat, orders, lines))
    report("interactions", 0.75)
    inter = _interactions(rng, clock, cust, orders)
    save("interactions", inter.table, "utf-8")
    save("feedback", _feedback(rng, clock, cust, orders, inter), "utf-8")
    save("costs", _costs(rng, clock, cust, inter), "utf-8")
    report("customers", 0.85)
    save("customers", _customers_table(rng, cust), "gb18030")
    save("truth", _truth_table(pop, clock, cust, orders, inter, seed, end))
    config = out / "tierwise.toml"
    config.write_text(_config_text(customers, seed, end), encoding="utf-8")
    report("done", 1.0)
    return GenerateResult(out, config, rows, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Calendar and vectorised sampling helpers


class _Clock:
    """The simulated calendar: day weights (weekday, 618, 双11, 双12) warp a uniform timeline.

    Processes run in operational days whose mean length is one calendar day, so a rate λ per day
    is a rate per average day; busy days hold more of the timeline and so more purchases.
    """

    def __init__(self, end: date, days: int) -> None:
        first = np.datetime64(end, "D") - (days - 1)
        dates = first + np.arange(days)
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        month = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
        dom = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
        festival = ((month == 11) & (dom == 11)) | ((month == 6) & (dom == 18))
        warmup = ((month == 11) & (dom < 11)) | ((month == 6) & (dom < 18))
        double12 = (month == 12) & (dom == 12)
        weight = _WEEKDAY[weekday] * np.where(festival, 4.0, np.where(warmup, 1.4, 1.0))
        weight *= np.where(double12, 2.0, 1.0)
        self.days = days
        self.month = month
        self.dom = dom
        self.festive = festival | warmup | double12
        self.cum = np.concatenate([[0.0], np.cumsum(weight / weight.mean())])
        self.length = float(self.cum[-1])
        self.first = int(first.astype("datetime64[s]").astype(np.int64))
        self.last = self.first + days * DAY - 1
        self.ymd = pc.strftime(pa.array(dates), format="%Y%m%d")

    def day(self, s: np.ndarray) -> np.ndarray:
        """Calendar day index of operational times."""
        return np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, self.days - 1)

    def day_of(self, sec: np.ndarray) -> np.ndarray:
        """Calendar day index of epoch seconds."""
        return (sec - self.first) // DAY

    def at(self, rng: np.random.Generator, day: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Epoch seconds on the given days, at times drawn from an hour-of-day profile."""
        return self.first + day * DAY + _hour_seconds(rng, hours, len(day))


def _hour_seconds(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    return _choice(rng, profile, n) * 3600 + rng.integers(0, 3600, n)


def _choice(rng: np.random.Generator, weights: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with the given (unnormalised) weights."""
    cdf = np.cumsum(weights, dtype=np.float64)
    return np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")


def _group_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each run of a `np.repeat(x, counts)` layout."""
    if len(values) == 0:
        return values
    cs = np.cumsum(values)
    starts = np.cumsum(counts) - counts
    before = np.where(starts > 0, cs[np.maximum(starts - 1, 0)], 0.0)
    return cs - np.repeat(before, counts)


def _group_keys(weights: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sorted keys `group + cumulative share in (0, 1]` so one searchsorted draws in every group."""
    group = np.repeat(np.arange(len(counts)), counts)
    cs = _group_cumsum(weights, counts)
    keys = group + cs / np.repeat(cs[np.cumsum(counts) - 1], counts)
    keys[np.cumsum(counts) - 1] = np.arange(len(counts)) + 1.0
    return keys


def _draw_in_groups(rng: np.random.Generator, keys: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One draw per element of `group` from that group's weights (see `_group_keys`)."""
    drawn = np.searchsorted(keys, group + rng.random(len(group)), side="right")
    return np.minimum(drawn, len(keys) - 1)  # group + u can round up to group + 1


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def _stack(parts: Sequence[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """Concatenate parts of columns (customer, seconds, kind, …); sort by time, customer, kind."""
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    order = np.lexsort((columns[2], columns[0], columns[1]))
    return [column[order] for column in columns]


# --------------------------------------------------------------------------------------------
# Products


@dataclass
class _Catalogue:
    category: np.ndarray
    price: np.ndarray
    keys: np.ndarray
    """Zipf-like popularity within each category, as `_group_keys`."""
    table: pa.Table


def _catalogue(rng: np.random.Generator, customers: int) -> _Catalogue:
    n_cat = len(_CATEGORIES)
    n = max(200, customers // 50)
    weight = np.array([c[1] for c in _CATEGORIES], dtype=np.float64)
    category = np.sort(np.concatenate([np.arange(n_cat), _choice(rng, weight, n - n_cat)]))
    counts = np.bincount(category, minlength=n_cat)
    median = np.array([c[2] for c in _CATEGORIES], dtype=np.float64)[category]
    raw = median * rng.lognormal(0.0, 0.6, n)
    price = np.where(raw >= 20, np.maximum(np.round(raw / 10) * 10 - 1, 19), np.round(raw, 1))
    rank = _group_cumsum(np.ones(n), counts)
    shuffle = np.lexsort((rng.random(n), category))  # popularity rank is not product id order
    keys = _group_keys((1.0 / rank**1.05)[shuffle], counts)

    syl = len(_BRAND_SYLLABLES)
    pairs = rng.permutation(syl * syl)[: n_cat * _BRANDS_PER_CATEGORY]
    brands = [_BRAND_SYLLABLES[i // syl] + _BRAND_SYLLABLES[i % syl] for i in pairs]
    brand = category * _BRANDS_PER_CATEGORY + rng.integers(0, _BRANDS_PER_CATEGORY, n)
    words = [c[5].split() for c in _CATEGORIES]
    word = rng.integers(0, 5, n)
    series = rng.choice(["", "Pro ", "Max ", "Lite ", "经典款 "], n)
    model = rng.integers(1, 10, n)
    names = [
        f"{brands[b]}{words[c][w % len(words[c])]} {s}{m}"
        for b, c, w, s, m in zip(brand, category, word, series, model, strict=True)
    ]
    table = pa.table(
        {
            "product_id": _ids("P", np.arange(1, n + 1), 6),
            "name": pa.array(names),
            "category": _pick([c[0] for c in _CATEGORIES], category),
            "brand": _pick(brands, brand),
            "price": pa.array(price),
        }
    )
    return _Catalogue(category, price, keys, table)


# --------------------------------------------------------------------------------------------
# Customers and their latent parameters


@dataclass
class _Customers:
    n: int
    buyer: np.ndarray
    s0: np.ndarray
    """Operational day of acquisition: a buyer's first purchase, anyone's registration."""
    lam: np.ndarray
    p: np.ndarray
    p_eff: np.ndarray
    """Dropout probability after the planted effect of unresolved complaints."""
    unresolved: np.ndarray
    nu: np.ndarray
    pref_keys: np.ndarray
    """Category preference per customer, as `_group_keys` over (customer, category)."""
    preferred: np.ndarray
    channel_cdf: np.ndarray
    region: np.ndarray
    city: np.ndarray
    store: np.ndarray
    manager: np.ndarray
    acquisition: np.ndarray
    acquisition_cost: np.ndarray
    consent: np.ndarray
    satisfaction: np.ndarray
    """Latent satisfaction before complaints (see `_satisfaction`)."""
    # Set by `_register` once first orders are known: registration (epoch seconds), customer
    # number in registration order, and its zero-padded id.
    registered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    number: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ids: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))


def _customers(rng: np.random.Generator, pop: Population, clock: _Clock, n: int) -> _Customers:
    buyer = rng.random(n) >= pop.never_buy
    s0 = clock.length * np.log1p(rng.random(n) * np.expm1(pop.growth)) / pop.growth
    lam = rng.gamma(pop.r, 1.0 / pop.alpha, n)
    p = rng.beta(pop.a, pop.b, n)
    unresolved = np.where(buyer, rng.random(n) < pop.unresolved_rate, 0)
    unresolved += unresolved * (rng.random(n) < 0.15)
    p_eff = p + (1.0 - p) * (1.0 - (1.0 - pop.churn_effect) ** unresolved)
    nu = rng.gamma(pop.spend_q, 1.0 / pop.spend_gamma, n)

    # Category preference ~ Dirichlet, tilted so big spenders lean to pricey categories.
    base = np.array([c[1] for c in _CATEGORIES], dtype=np.float64)
    level = np.log([c[2] for c in _CATEGORIES])
    spend = np.log(1.0 / nu)
    spend = (spend - spend.mean()) / (spend.std() or 1.0)
    tilt = np.outer(spend, (level - level.mean()) / level.std())
    pref = rng.gamma(3.0 * base / base.sum() * np.exp(0.5 * tilt)) + 1e-12
    n_cat = len(_CATEGORIES)
    pref_keys = _group_keys(pref.ravel(), np.full(n, n_cat))

    region = _choice(rng, [r[1] for r in _REGIONS], n)
    n_cities = np.array([len(r[2].split()) for r in _REGIONS])
    city = (np.cumsum(n_cities) - n_cities)[region] + (
        rng.random(n) ** 1.6 * n_cities[region]
    ).astype(np.int64)
    acquisition = _choice(rng, [a[1] for a in _ACQUISITION], n)
    mean_cost = np.array([a[2] for a in _ACQUISITION])[acquisition]
    channel_pref = rng.gamma(np.tile(_CHANNEL_PREF, (n, 1)))
    channel_pref[:, _STORE] *= np.array([a[3] for a in _ACQUISITION])[acquisition]
    channel_cdf = np.cumsum(channel_pref, axis=1) / channel_pref.sum(axis=1, keepdims=True)
    return _Customers(
        n=n,
        buyer=buyer,
        s0=s0,
        lam=lam,
        p=p,
        p_eff=p_eff,
        unresolved=unresolved,
        nu=nu,
        pref_keys=pref_keys,
        preferred=np.argmax(pref, axis=1),
        channel_cdf=channel_cdf,
        region=region,
        city=city,
        store=city * _STORES_PER_CITY + rng.integers(0, _STORES_PER_CITY, n),
        manager=region * _MANAGERS_PER_REGION + rng.integers(0, _MANAGERS_PER_REGION, n),
        acquisition=acquisition,
        acquisition_cost=np.round(mean_cost * rng.lognormal(0.0, 0.35, n), 2),
        consent=rng.random(n) < 0.8,
        satisfaction=rng.normal(0.0, 1.0, n),
    )


def _register(rng: np.random.Generator, clock: _Clock, c: _Customers, o: _Orders) -> None:
    """Registration times and customer numbers (numbered in registration order, as a CRM does).

    Half the buyers register at checkout, the others days to weeks before their first order;
    customers who never buy register at their acquisition time.
    """
    n = c.n
    delay = np.where(rng.random(n) < 0.5, rng.integers(60, 1800, n), rng.exponential(15 * DAY, n))
    acquired = clock.at(rng, clock.day(c.s0), _ONLINE_HOURS)
    c.registered = np.where(c.buyer, o.first_sec - delay.astype(np.int64), acquired)
    order = np.lexsort((np.arange(n), c.registered))
    c.number = np.empty(n, np.int64)
    c.number[order] = np.arange(1, n + 1)
    c.ids = _ids("", c.number, max(7, len(str(n)) + 1))


# --------------------------------------------------------------------------------------------
# Orders: BG/NBD purchases, Gamma-Gamma values


@dataclass
class _Orders:
    """Orders sorted by time; per-customer outcomes of the purchase process."""

    cust: np.ndarray
    sec: np.ndarray
    channel: np.ndarray
    ids: pa.Array
    repeat: np.ndarray
    """Repeat purchases per customer (BG/NBD x)."""
    alive: np.ndarray
    dropout_day: np.ndarray
    """Calendar day index of the purchase after which the customer dropped out, −1 if none."""
    first_sec: np.ndarray
    """Epoch seconds of each customer's first order, −1 for customers who never buy."""


def _orders(rng: np.random.Generator, clock: _Clock, c: _Customers) -> _Orders:
    """First purchase at acquisition, then Poisson(λ) repeats until a geometric(p) dropout."""
    n = c.n
    horizon = clock.length - c.s0
    arrivals = rng.poisson(c.lam * horizon)
    dropout_at = rng.geometric(c.p_eff)
    repeat = np.where(c.buyer, np.minimum(arrivals, dropout_at), 0)
    alive = c.buyer & (dropout_at > arrivals)

    # The first `repeat` of `arrivals` sorted uniform times on the horizon, from exponential
    # spacings: U(k) = S_k / S_(N+1), where S_(N+1) = S_repeat + Gamma(N + 1 − repeat).
    owner = np.repeat(np.arange(n), repeat)
    spacing = _group_cumsum(rng.exponential(size=len(owner)), repeat)
    last = np.zeros(n)
    has = repeat > 0
    last[has] = spacing[np.cumsum(repeat)[has] - 1]
    total = last + rng.gamma(np.maximum(arrivals - repeat, 0) + 1.0)
    repeat_s = c.s0[owner] + horizon[owner] * spacing / total[owner]

    buyers = _rows(c.buyer)
    cust = np.concatenate([buyers, owner])
    day = clock.day(np.concatenate([c.s0[buyers], repeat_s]))
    channel = np.minimum((c.channel_cdf[cust] < rng.random(len(cust))[:, None]).sum(axis=1), 3)
    sec = clock.first + day * DAY
    store = channel == _STORE
    sec[store] += _hour_seconds(rng, _STORE_HOURS, int(store.sum()))
    sec[~store] += _hour_seconds(rng, _ONLINE_HOURS, int((~store).sum()))

    order = np.lexsort((cust, sec))
    cust, sec, day, channel = cust[order], sec[order], day[order], channel[order]
    first_sec = np.full(n, -1, np.int64)
    seen, first = np.unique(cust, return_index=True)
    first_sec[seen] = sec[first]
    dropout_day = np.full(n, -1, np.int64)
    dropped = _rows(c.buyer & ~alive)
    dropout_day[dropped] = clock.day(repeat_s[np.cumsum(repeat)[dropped] - 1])
    ids = pc.binary_join_element_wise("SO", clock.ymd.take(pa.array(day)), _seq(len(sec)), "")
    return _Orders(cust, sec, channel, ids, repeat, alive, dropout_day, first_sec)


@dataclass
class _Lines:
    """Order lines (returns included, each right after the line it returns), in file order."""

    order: np.ndarray
    product: np.ndarray
    category: np.ndarray
    quantity: np.ndarray
    amount: np.ndarray
    discount: np.ndarray
    cost: np.ndarray
    is_return: np.ndarray


def _lines(
    rng: np.random.Generator,
    pop: Population,
    clock: _Clock,
    c: _Customers,
    cat: _Catalogue,
    o: _Orders,
) -> _Lines:
    """1–4 lines per order from preferred categories; the order value is split over its lines."""
    n_orders = len(o.cust)
    order = np.repeat(np.arange(n_orders), 1 + _choice(rng, pop.lines_per_order, n_orders))
    cust = o.cust[order]
    product = _products_for(rng, c, cat, cust)
    category = cat.category[product]
    price = cat.price[product]

    value = rng.gamma(pop.spend_p, 1.0 / c.nu[o.cust])
    weight = price * rng.gamma(2.0, 1.0, len(order))
    amount = np.maximum(
        np.round(value[order] * weight / np.bincount(order, weights=weight)[order], 2), 0.01
    )
    festive = clock.festive[clock.day_of(o.sec)]
    rate = _DISCOUNTS[
        np.where(
            festive,
            _choice(rng, _FESTIVE_DISCOUNT_P, n_orders),
            _choice(rng, _DISCOUNT_P, n_orders),
        )
    ][order]
    discount = np.round(amount * rate / (1.0 - rate), 2)
    gross = amount + discount
    quantity = np.clip(np.round(gross / price), 1, 20).astype(np.int64)
    cogs = np.array([x[3] for x in _CATEGORIES])[category]
    cost = np.round(gross * cogs * rng.uniform(0.9, 1.1, len(order)), 2)

    # Returns: part of a line's quantity comes back, as a negative line in the same order.
    back = _rows(rng.random(len(order)) < np.array([x[4] for x in _CATEGORIES])[category])
    share = (1 + rng.binomial(quantity[back] - 1, 0.3)) / quantity[back]
    n_lines = len(order)
    position = np.concatenate([np.arange(n_lines), back])
    flag = np.concatenate([np.zeros(n_lines, bool), np.ones(len(back), bool)])
    sort = np.lexsort((flag, position))

    def with_returns(x: np.ndarray, returned: np.ndarray) -> np.ndarray:
        return np.concatenate([x, returned])[sort]

    return _Lines(
        order=with_returns(order, order[back]),
        product=with_returns(product, product[back]),
        category=with_returns(category, category[back]),
        quantity=with_returns(quantity, -np.round(share * quantity[back]).astype(np.int64)),
        amount=with_returns(amount, -np.round(amount[back] * share, 2)),
        discount=with_returns(discount, -np.round(discount[back] * share, 2)),
        cost=with_returns(cost, -np.round(cost[back] * share, 2)),
        is_return=flag[sort],
    )


def _products_for(
    rng: np.random.Generator, c: _Customers, cat: _Catalogue, cust: np.ndarray
) -> np.ndarray:
    """Products for these customers: a category by preference, then a product by popularity."""
    n_cat = len(_CATEGORIES)
    category = np.clip(_draw_in_groups(rng, c.pref_keys, cust) - cust * n_cat, 0, n_cat - 1)
    return _draw_in_groups(rng, cat.keys, category)


# --------------------------------------------------------------------------------------------
# Behaviour events


def _events(
    rng: np.random.Generator,
    pop: Population,
    clock: _Clock,
    c: _Customers,
    cat: _Catalogue,
    o: _Orders,
    lines: _Lines,
) -> pa.Table:
    """Browse-to-buy logs over the last `event_days`: ordered products were viewed and mostly
    carted first; browsing without buying scales with the purchase rate while a customer is
    alive, fades after dropout, and customers who never buy browse too.
    """
    since = clock.last + 1 - pop.event_days * DAY
    parts: list[tuple[np.ndarray, ...]] = []  # customer, seconds, type, product (-1), channel

    sold = lines.order[~lines.is_return]
    bought = _rows((o.sec[sold] >= since) & (o.channel[sold] != _STORE))
    line_order = sold[bought]
    cust, sec, ch = o.cust[line_order], o.sec[line_order], o.channel[line_order]
    product = lines.product[~lines.is_return][bought]
    gap = 60 + rng.exponential(2400, len(sec)).astype(np.int64)
    parts.append((cust, sec - gap, np.full(len(cust), _VIEW), product, ch))
    carted = _rows(rng.random(len(sec)) < 0.75)
    cart_sec = sec[carted] - (gap[carted] * rng.uniform(0.1, 0.9, len(carted))).astype(np.int64)
    parts.append((cust[carted], cart_sec, np.full(len(carted), _CART), product[carted], ch[carted]))
    visits = _rows((o.sec >= since) & (o.channel == _STORE))
    visit_sec = o.sec[visits] - rng.integers(300, 3600, len(visits))
    parts.append(
        (
            o.cust[visits],
            visit_sec,
            np.full(len(visits), _VISIT),
            np.full(len(visits), -1),
            o.channel[visits],
        )
    )

    # Browsing sessions: a lively stretch (alive, or until the dropout day) plus a faint tail.
    start = np.maximum(c.registered, since)
    stop = np.where(o.alive | ~c.buyer, clock.last, clock.first + (o.dropout_day + 1) * DAY - 1)
    lively_days = np.maximum(stop - start, 0) / DAY
    window_days = np.maximum(clock.last - start, 0) / DAY
    lively = np.where(c.buyer, rng.poisson(9.0 * c.lam * lively_days), 0)
    faint = np.where(
        c.buyer,
        rng.poisson(0.004 * window_days),
        1 + rng.poisson(rng.gamma(0.8, 0.03, c.n) * window_days),
    )
    segment = np.repeat(np.arange(2 * c.n), np.concatenate([lively, faint]))
    who = segment % c.n
    lo = start[who]
    hi = np.concatenate([stop, np.full(c.n, clock.last)])[segment]
    day = clock.day_of(lo + (rng.random(len(who)) * (hi - lo)).astype(np.int64))
    view_sec = np.clip(clock.at(rng, day, _ONLINE_HOURS), lo, hi)
    online = np.diff(c.channel_cdf, axis=1, prepend=0.0)[:, _ONLINE]
    online_cdf = np.cumsum(online, axis=1) / online.sum(axis=1, keepdims=True)
    pick = (online_cdf[who] < rng.random(len(who))[:, None]).sum(axis=1)
    view_ch = np.array(_ONLINE)[np.minimum(pick, len(_ONLINE) - 1)]
    viewed = _products_for(rng, c, cat, who)
    parts.append((who, view_sec, np.full(len(who), _VIEW), viewed, view_ch))
    # A search before some views, a click through to others, and carts that are abandoned.
    for code, chance, low, high in (
        (_SEARCH, 0.3, -600, -60),
        (_CLICK, 0.35, -60, -5),
        (_CART, 0.15, 30, 900),
    ):
        k = _rows(rng.random(len(who)) < chance)
        shifted = np.minimum(view_sec[k] + rng.integers(low, high, len(k)), clock.last)
        item = np.full(len(k), -1) if code == _SEARCH else viewed[k]
        parts.append((who[k], shifted, np.full(len(k), code), item, view_ch[k]))

    who, sec, event, product, channel = _stack(parts)
    return pa.table(
        {
            "customer_id": c.ids.take(pa.array(who)),
            "occurred_at": _ts(sec),
            "event_type": _pick(_EVENT_TYPES, event),
            "product_id": cat.table["product_id"].combine_chunks().take(_maybe(product)),
            "channel": _pick(_CHANNELS, channel),
        }
    )


# --------------------------------------------------------------------------------------------
# Service interactions, feedback, costs


@dataclass
class _Interactions:
    cust: np.ndarray
    sec: np.ndarray
    kind: np.ndarray
    resolved: np.ndarray
    """Epoch seconds of resolution, −1 when open or not applicable."""
    cost: np.ndarray
    table: pa.Table


def _interactions(
    rng: np.random.Generator, clock: _Clock, c: _Customers, o: _Orders
) -> _Interactions:
    """Consultations before orders, complaints after them (the planted unresolved ones right after
    the first order), follow-ups after resolved complaints and account-manager outreach.
    """
    n_orders = len(o.cust)
    staff = _SERVICE_STAFF
    # customer, seconds, kind, channel, outcome, handler, cost, resolved (−1: none)
    parts: list[tuple[np.ndarray, ...]] = []

    def add(
        who: np.ndarray,
        sec: np.ndarray,
        kind: str,
        channel: np.ndarray,
        outcome: np.ndarray,
        handler: np.ndarray,
        cost: np.ndarray,
        resolved: np.ndarray | None = None,
    ) -> None:
        k = len(who)
        done = np.full(k, -1) if resolved is None else resolved
        kinds = np.full(k, _KINDS.index(kind))
        parts.append((who, sec, kinds, channel, outcome, handler, np.round(cost, 2), done))

    def outcomes(codes: str, weights: list[float], k: int) -> np.ndarray:
        return np.array([_OUTCOMES.index(x) for x in codes.split()])[_choice(rng, weights, k)]

    def service_channel(k: int) -> np.ndarray:
        return _choice(rng, [2, 5, 4], k)  # phone, online_chat, wechat

    m = _rows(rng.random(n_orders) < 0.05)
    k = len(m)
    add(
        o.cust[m],
        o.sec[m] - rng.integers(600, 2 * DAY, k),
        "consultation",
        service_channel(k),
        outcomes("answered transferred", [0.85, 0.15], k),
        rng.integers(0, staff, k),
        rng.uniform(5, 15, k),
    )
    m = _rows(rng.random(n_orders) < 0.025)
    k = len(m)
    opened = np.minimum(o.sec[m] + rng.integers(DAY, 15 * DAY, k), clock.last)
    closed = np.minimum(opened + 600 + rng.exponential(36 * 3600, k).astype(np.int64), clock.last)
    add(
        o.cust[m],
        opened,
        "complaint",
        service_channel(k),
        outcomes("resolved refunded replaced", [0.5, 0.3, 0.2], k),
        rng.integers(0, staff, k),
        rng.uniform(20, 80, k),
        closed,
    )
    who = np.repeat(np.arange(c.n), c.unresolved)
    k = len(who)
    add(
        who,
        np.minimum(o.first_sec[who] + rng.integers(3600, 10 * DAY, k), clock.last),
        "complaint",
        service_channel(k),
        outcomes("pending", [1.0], k),
        rng.integers(0, staff, k),
        rng.uniform(20, 80, k),
    )
    f = _rows(rng.random(len(m)) < 0.6)
    follow = closed[f] + rng.integers(DAY, 7 * DAY, len(f))
    f, follow = f[follow <= clock.last], follow[follow <= clock.last]
    k = len(f)
    add(
        o.cust[m][f],
        follow,
        "follow_up",
        np.where(rng.random(k) < 0.5, 0, 2),
        outcomes("satisfied no_response", [0.7, 0.3], k),
        staff + c.manager[o.cust[m][f]],
        rng.uniform(3, 8, k),
    )

    # Account managers reach out more often to customers with a high expected spend rate.
    buyers = _rows(c.buyer)
    worth = c.lam[buyers] / c.nu[buyers]
    per_year = np.where(worth >= np.quantile(worth, 0.9) if len(buyers) else False, 3.0, 0.5)
    years = (clock.last - c.registered[buyers]) / (365.25 * DAY)
    who = np.repeat(buyers, rng.poisson(per_year * years))
    k = len(who)
    first_day = clock.day_of(np.maximum(c.registered[who], clock.first))
    day = first_day + (rng.random(k) * (clock.days - first_day)).astype(np.int64)
    sec = np.maximum(clock.at(rng, day, _OFFICE_HOURS), c.registered[who])
    how = _choice(rng, [0.5, 0.4, 0.1], k)  # call, email, visit
    for i, (name, medium, codes, weights, low, high) in enumerate(
        (
            ("call", 0, "reached no_answer", [0.6, 0.4], 2, 6),
            ("email", 3, "sent opened", [0.7, 0.3], 0.03, 0.08),
            ("visit", 4, "completed", [1.0], 80, 200),
        )
    ):
        j = _rows(how == i)
        add(
            who[j],
            sec[j],
            name,
            np.full(len(j), medium),
            outcomes(codes, weights, len(j)),
            staff + c.manager[who[j]],
            rng.uniform(low, high, len(j)),
        )

    cust, sec, kind, channel, outcome, handler, cost, done = _stack(parts)
    handlers = [f"cs{i + 1:03d}" for i in range(staff)] + _managers()
    table = pa.table(
        {
            "客户编号": c.ids.take(pa.array(cust)),
            "发生时间": _ts(sec),
            "类型": _pick(_KINDS, kind),
            "渠道": _pick(_SERVICE_CHANNELS, channel),
            "结果": _pick(_OUTCOMES, outcome),
            "处理人": _pick(handlers, handler),
            "成本": pa.array(cost),
            "解决时间": _ts(done, missing=done < 0),
        }
    )
    return _Interactions(cust, sec, kind, done, cost, table)


def _satisfaction(c: _Customers, inter: _Interactions) -> np.ndarray:
    """Latent satisfaction after complaints: an open complaint hurts far more than a solved one."""
    complaint = inter.kind == _KINDS.index("complaint")
    solved = np.bincount(inter.cust[complaint & (inter.resolved >= 0)], minlength=c.n) > 0
    return c.satisfaction - 1.5 * (c.unresolved > 0) - 0.5 * solved


def _feedback(
    rng: np.random.Generator, clock: _Clock, c: _Customers, o: _Orders, inter: _Interactions
) -> pa.Table:
    """Post-purchase and post-complaint surveys and a yearly NPS survey; scores follow latent
    satisfaction, so complaints (above all unresolved ones) go with low CSAT and NPS.
    """
    mood = _satisfaction(c, inter)
    parts: list[tuple[np.ndarray, ...]] = []  # cust, sec, survey, csat (−1 none), nps (−1 none)

    def scores(cust: np.ndarray, csat_base: float, nps_share: float) -> tuple[np.ndarray, ...]:
        k = len(cust)
        csat = np.clip(np.round(csat_base + 0.8 * mood[cust] + rng.normal(0, 0.7, k)), 1, 5)
        nps = np.clip(np.round(7.2 + 1.8 * mood[cust] + rng.normal(0, 1.3, k)), 0, 10)
        return csat.astype(np.int64), np.where(rng.random(k) < nps_share, nps, -1).astype(np.int64)

    m = _rows(rng.random(len(o.cust)) < 0.06)
    sec = o.sec[m] + rng.integers(DAY, 7 * DAY, len(m))
    m, sec = m[sec <= clock.last], sec[sec <= clock.last]
    parts.append((o.cust[m], sec, np.zeros(len(m), np.int64), *scores(o.cust[m], 3.9, 0.5)))

    complaint = _rows(
        (inter.kind == _KINDS.index("complaint")) & (rng.random(len(inter.kind)) < 0.5)
    )
    done = inter.resolved[complaint]
    sec = np.where(
        done >= 0,
        done + rng.integers(1800, 2 * DAY, len(complaint)),
        inter.sec[complaint] + rng.integers(3 * DAY, 10 * DAY, len(complaint)),
    )
    keep = sec <= clock.last
    who, sec, still_open = inter.cust[complaint][keep], sec[keep], done[keep] < 0
    csat, nps = scores(who, 3.4, 0.3)
    csat = np.maximum(csat - np.where(still_open, 2, 0), 1)
    parts.append((who, sec, np.ones(len(who), np.int64), csat, nps))

    for day in _rows((clock.month == 12) & (clock.dom == 1)):
        start = clock.first + day * DAY
        who = _rows(c.buyer & (c.registered < start) & (rng.random(c.n) < 0.15))
        sec = np.minimum(start + rng.integers(0, 14 * DAY, len(who)), clock.last)
        _, nps = scores(who, 0.0, 1.0)
        parts.append((who, sec, np.full(len(who), 2), np.full(len(who), -1), nps))

    cust, sec, survey, csat, nps = _stack(parts)
    k = len(cust)
    tone = np.where(
        csat >= 0,
        np.select([csat >= 4, csat == 3], [0, 1], 2),
        np.select([nps >= 9, nps >= 7], [0, 1], 2),
    )
    pools = (_PRAISE, _NEUTRAL, _COMPLAINTS)
    flat = [text for pool in pools for text in pool]
    offset = np.cumsum([0] + [len(p) for p in pools])[tone]
    comment = offset + (rng.random(k) * np.array([len(p) for p in pools])[tone]).astype(np.int64)
    comment[rng.random(k) >= 0.35] = -1
    return pa.table(
        {
            "customer_id": c.ids.take(pa.array(cust)),
            "responded_at": _ts(sec),
            "survey": _pick(_SURVEYS, survey),
            "csat": pa.array(csat, mask=csat < 0),
            "nps": pa.array(nps, mask=nps < 0),
            "comment": pa.array(flat).take(_maybe(comment)),
        }
    )


def _costs(
    rng: np.random.Generator, clock: _Clock, c: _Customers, inter: _Interactions
) -> pa.Table:
    """Acquisition cost at registration, service cost as monthly sums of interaction costs, and
    marketing cost per contacted customer of a dozen campaigns (only customers who consented).
    """
    paid = _rows(c.buyer & (c.acquisition_cost > 0))
    parts = [(paid, c.registered[paid], np.zeros(len(paid), np.int64), c.acquisition_cost[paid])]

    month = inter.sec.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    span = int(month.max(initial=0)) + 1
    keys, at = np.unique(inter.cust * span + month, return_inverse=True)
    total = np.round(np.bincount(at, weights=inter.cost), 2)
    next_month = (keys % span + 1).astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    month_end = np.minimum(next_month - 1, clock.last)
    parts.append((keys // span, month_end, np.ones(len(keys), np.int64), total))

    campaigns = 12
    for i in range(campaigns):
        day = int(clock.days * (i + 0.5) / campaigns)
        sent = clock.first + day * DAY + 10 * 3600
        who = _rows(c.buyer & c.consent & (c.registered < sent) & (rng.random(c.n) < 0.3))
        medium, unit = _CAMPAIGNS[i % len(_CAMPAIGNS)]
        k = len(who)
        spent = rng.gamma(2.0, unit / 2.0, k) if medium == "coupon" else np.full(k, unit)
        spent = np.maximum(np.round(spent, 2), 0.01)
        parts.append((who, np.full(k, sent), np.full(k, 2), spent))

    cust, sec, kind, amount = _stack(parts)
    return pa.table(
        {
            "customer_id": c.ids.take(pa.array(cust)),
            "incurred_at": _ts(sec),
            "kind": _pick(("acquisition", "service", "marketing"), kind),
            "amount": pa.array(amount),
        }
    )


# --------------------------------------------------------------------------------------------
# Output tables


def _customers_table(rng: np.random.Generator, c: _Customers) -> pa.Table:
    """The CRM export: Chinese headers, PII, and two unmapped columns (kept as attributes)."""
    n = c.n
    surname = _choice(rng, [s[2] for s in _SURNAMES], n)
    given = rng.integers(0, len(_GIVEN), (n, 2))
    second = np.where(rng.random(n) < 0.7, given[:, 1], len(_GIVEN))  # one- or two-character
    chars = [*_GIVEN, ""]
    name = pc.binary_join_element_wise(
        _pick([s[0] for s in _SURNAMES], surname),
        _pick(chars, given[:, 0]),
        _pick(chars, second),
        "",
    )

    # An affine map of the customer number is a permutation modulo 10^8: phones are unique.
    local = (c.number * 48_271 + int(rng.integers(0, 10**8))) % 10**8
    digits = pc.binary_join_element_wise(
        _pick(_PHONE_PREFIXES, rng.integers(0, len(_PHONE_PREFIXES), n)), _ids("", local, 8), ""
    )
    spaced = pc.binary_join_element_wise(
        "+86",
        pc.utf8_slice_codeunits(digits, 0, 3),
        pc.utf8_slice_codeunits(digits, 3, 7),
        pc.utf8_slice_codeunits(digits, 7, 11),
        " ",
    )
    phone = pc.if_else(pa.array(rng.random(n) < 0.4), spaced, digits)

    handle = pc.binary_join_element_wise(
        _pick([s[1] for s in _SURNAMES], surname),
        _text(rng.integers(1, 10_000, n)),
        "@",
        _pick(_MAIL_DOMAINS, rng.integers(0, len(_MAIL_DOMAINS), n)),
        "",
    )
    qq = pc.binary_join_element_wise(_text(rng.integers(10**5, 10**10, n)), "@qq.com", "")
    mail = rng.random(n)
    email = pc.if_else(pa.array(mail < 0.3), qq, handle)
    email = pc.if_else(pa.array(mail < 0.85), email, pa.scalar(None, pa.string()))

    card = pc.binary_join_element_wise("M", _ids("", rng.integers(0, 10**10, n), 10), "")
    card = pc.if_else(pa.array(rng.random(n) < 0.45), card, pa.scalar(None, pa.string()))
    note = np.where(rng.random(n) < 0.05, rng.integers(0, len(_NOTES), n), -1)
    gender = np.where(rng.random(n) < 0.03, -1, (rng.random(n) < 0.52).astype(np.int64))
    income = _choice(rng, [b[1] for b in _INCOME_BANDS], n)
    table = pa.table(
        {
            "客户编号": c.ids,
            "注册时间": pc.strftime(_ts(c.registered), format="%Y/%m/%d %H:%M"),
            "姓名": name,
            "手机号": phone,
            "邮箱": email,
            "性别": _pick(("男", "女"), gender),
            "年龄段": _pick(
                [b[0] for b in _AGE_BANDS], _choice(rng, [b[1] for b in _AGE_BANDS], n)
            ),
            "收入段": _pick(
                [b[0] for b in _INCOME_BANDS], np.where(rng.random(n) < 0.08, -1, income)
            ),
            "省份": _pick([r[0] for r in _REGIONS], c.region),
            "城市": _pick(_CITIES, c.city),
            "获客渠道": _pick([a[0] for a in _ACQUISITION], c.acquisition),
            "获客成本": pa.array(c.acquisition_cost),
            "营销同意": _pick(("否", "是"), c.consent.astype(np.int64)),
            "客户经理": _pick(_managers(), c.manager),
            "会员卡号": card,
            "备注": _pick(_NOTES, note),
        }
    )
    return table.take(pa.array(np.argsort(c.number)))


def _orders_table(c: _Customers, cat: _Catalogue, o: _Orders, lines: _Lines) -> pa.Table:
    stores = [f"ST{i + 1:03d}" for i in range(len(_CITIES) * _STORES_PER_CITY)]
    channel = o.channel[lines.order]
    store = np.where(channel == _STORE, c.store[o.cust[lines.order]], -1)
    return pa.table(
        {
            "customer_id": c.ids.take(pa.array(o.cust[lines.order])),
            "order_id": o.ids.take(pa.array(lines.order)),
            "ordered_at": _ts(o.sec[lines.order]),
            "amount": pa.array(lines.amount),
            "quantity": pa.array(lines.quantity),
            "product_id": cat.table["product_id"].combine_chunks().take(pa.array(lines.product)),
            "category": _pick([x[0] for x in _CATEGORIES], lines.category),
            "channel": _pick(_CHANNELS, channel),
            "store_id": _pick(stores, store),
            "discount": pa.array(lines.discount),
            "cost": pa.array(lines.cost),
        }
    )


def _truth_table(
    pop: Population,
    clock: _Clock,
    c: _Customers,
    o: _Orders,
    inter: _Interactions,
    seed: int,
    end: date,
) -> pa.Table:
    """Per-customer latent parameters and outcomes; population hyperparameters in the metadata.

    `lambda_per_day` is per average day of the warped calendar; `orders` and `purchase_days`
    count what orders.parquet holds, `t_days` is the observation length from the first order.
    """
    buyer = c.buyer
    orders = np.bincount(o.cust, minlength=c.n)
    days = np.unique(o.cust * clock.days + clock.day_of(o.sec))
    purchase_days = np.bincount(days // clock.days, minlength=c.n)
    dropout = np.where(o.dropout_day >= 0, o.dropout_day, 0)
    dropout_date = (clock.first // DAY + dropout).astype("datetime64[D]")
    table = pa.table(
        {
            "customer_id": c.ids,
            "buyer": pa.array(buyer),
            "registered_at": _ts(c.registered),
            "first_order_at": _ts(o.first_sec, missing=~buyer),
            "t_days": pa.array((clock.last + 1 - o.first_sec) / DAY, mask=~buyer),
            "lambda_per_day": pa.array(c.lam),
            "p_dropout": pa.array(c.p),
            "p_dropout_effective": pa.array(c.p_eff),
            "churn_effect": pa.array(c.p_eff - c.p),
            "n_unresolved_complaints": pa.array(c.unresolved.astype(np.int64)),
            "repeat_purchases": pa.array(o.repeat),
            "orders": pa.array(orders),
            "purchase_days": pa.array(purchase_days),
            "alive": pa.array(o.alive),
            "dropout_date": pa.array(dropout_date, mask=o.dropout_day < 0),
            "spend_shape": pa.array(np.full(c.n, pop.spend_p)),
            "spend_rate": pa.array(c.nu),
            "mean_order_value": pa.array(pop.spend_p / c.nu),
            "preferred_category": _pick([x[0] for x in _CATEGORIES], c.preferred),
            "satisfaction": pa.array(_satisfaction(c, inter)),
        }
    )
    meta = {"population": asdict(pop), "seed": seed, "end": end.isoformat()}
    table = table.replace_schema_metadata({"tierwise.truth": json.dumps(meta)})
    return table.take(pa.array(np.argsort(c.number)))


# --------------------------------------------------------------------------------------------
# Writing


# Source table -> (file, header mapping canonical -> source name where it differs, comment).
_SOURCES: dict[str, tuple[str, dict[str, str], str]] = {
    "orders": ("orders.parquet", {}, "One row per order line; negative lines are returns."),
    "customers": (
        "customers.csv",
        {
            "customer_id": "客户编号",
            "registered_at": "注册时间",
            "name": "姓名",
            "phone": "手机号",
            "email": "邮箱",
            "gender": "性别",
            "age_band": "年龄段",
            "income_band": "收入段",
            "region": "省份",
            "city": "城市",
            "acquisition_channel": "获客渠道",
            "acquisition_cost": "获客成本",
            "consent_marketing": "营销同意",
            "account_manager": "客户经理",
        },
        "CRM export: GB18030, Chinese headers; 会员卡号 and 备注 stay as attributes.",
    ),
    "products": ("products.csv", {}, "Catalogue: UTF-8 with BOM."),
    "events": ("events.parquet", {}, "Behaviour logs of the last 180 days."),
    "interactions": (
        "interactions.csv",
        {
            "customer_id": "客户编号",
            "occurred_at": "发生时间",
            "kind": "类型",
            "channel": "渠道",
            "outcome": "结果",
            "handled_by": "处理人",
            "cost": "成本",
            "resolved_at": "解决时间",
        },
        "Service log with Chinese headers; an empty 解决时间 is an open complaint.",
    ),
    "feedback": ("feedback.csv", {}, "Survey answers: CSAT 1-5, NPS 0-10."),
    "costs": ("costs.csv", {}, "Acquisition, service (monthly) and marketing costs."),
}


def _config_text(customers: int, seed: int, end: date) -> str:
    lines = [
        f"# Tierwise demo configuration, written by `tierwise generate` "
        f"({customers} customers, seed {seed}).",
        "# Relative paths resolve against the directory of this file.",
        "",
        "[warehouse]",
        'path = "warehouse.duckdb"',
        "",
        "[scoring]",
        "# The simulation ends here; truth.parquet's `alive` refers to this date.",
        f"as_of = {end.isoformat()}",
    ]
    for table, (file, columns, comment) in _SOURCES.items():
        fmt = file.rsplit(".", 1)[1]
        lines += ["", f"# {comment}", f"[sources.{table}]"]
        lines += [f'path = "{file}"', f'format = "{fmt}"', 'encoding = "auto"']
        if columns:
            lines += ["", f"[sources.{table}.columns]"]
            lines += [f'{k} = "{v}"' for k, v in columns.items()]
    return "\n".join(lines) + "\n"


def _write_csv(table: pa.Table, path: Path, encoding: str) -> None:
    """CSV with plain values: money with two decimals, times as `YYYY-MM-DD HH:MM:SS`."""
    text = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(col.type):
            col = col.cast(pa.decimal128(18, 2), safe=False)
        elif pa.types.is_timestamp(col.type):
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S")
        text[name] = col.cast(pa.string())
    frame = pa.table(text).to_pandas()
    frame.to_csv(path, index=False, encoding=encoding, lineterminator="\n")


# --------------------------------------------------------------------------------------------
# Arrow helpers


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Zero-padded identifier strings: leading zeros are part of the id."""
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(_text(numbers), width, "0"), "")


def _seq(n: int) -> pa.Array:
    return pc.utf8_lpad(_text(np.arange(1, n + 1)), max(7, len(str(n))), "0")


def _text(numbers: np.ndarray) -> pa.Array:
    return pa.array(numbers).cast(pa.string())


def _managers() -> list[str]:
    return [f"am{i + 1:03d}" for i in range(len(_REGIONS) * _MANAGERS_PER_REGION)]


def _pick(values: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    """values[idx] as strings, null where idx is −1."""
    return pa.array(values, pa.string()).take(_maybe(idx))


def _maybe(idx: np.ndarray) -> pa.Array:
    return pa.array(idx, mask=idx < 0)


def _ts(sec: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Naive local timestamps from epoch seconds (never shifted to a zone)."""
    return pa.array(sec.astype("datetime64[s]"), mask=missing)
