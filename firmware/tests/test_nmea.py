"""NMEA sentences from real receivers, and the fix a terminal would stamp onto a punch."""

from tack.nmea import GpsReader, parse

# Published examples (gpsinformation.org, the u-blox protocol manual), checksums as printed.
RMC_1994 = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GGA_1994 = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
RMC_WEST = "$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68"
RMC_UBLOX = "$GPRMC,083559.00,A,4717.11437,N,00833.91522,E,0.004,77.52,091202,,,A*57"
GGA_UBLOX = "$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B"
RMC_VOID = "$GPRMC,,V,,,,,,,,,,N*53"
GGA_NOFIX = "$GPGGA,,,,,,0,00,99.99,,,,,,*48"


def _nmea(body):
    """A sentence with its checksum, computed here independently of tack.nmea."""
    x = 0
    for ch in body:
        x ^= ord(ch)
    return "$%s*%02X" % (body, x)


def _rmc(time, lat, lon, date, status="A", talker="GN"):
    return _nmea("%sRMC,%s,%s,%s,%s,0.1,0.0,%s,,,A" % (talker, time, status, lat, lon, date))


def _gga(time, lat, lon, quality=1, sats="09", hdop="1.20", talker="GN"):
    fields = (talker, time, lat, lon, quality, sats, hdop)
    return _nmea("%sGGA,%s,%s,%s,%d,%s,%s,12.0,M,0.0,M,," % fields)


def test_checksums_of_the_published_sentences_are_right():
    for line in (RMC_1994, GGA_1994, RMC_WEST, RMC_UBLOX, GGA_UBLOX, RMC_VOID, GGA_NOFIX):
        assert _nmea(line[1:-3]) == line, "test data: %s vs %s" % (_nmea(line[1:-3]), line)


def test_rmc_gives_position_and_utc_time():
    p = parse(RMC_1994)
    assert p["type"] == "RMC" and p["valid"], p
    assert p["lat"] == 481173000 and p["lon"] == 115166667, p  # 48.1173, 11.5166667
    assert p["ts"] == 764426119000, "1994-03-23T12:35:19Z, got %r" % p["ts"]
    p = parse(_rmc("000000", "0000.000,N", "00000.000,E", "010179"))
    assert p["ts"] == 3439756800000, "yy 79 is 2079: %r" % p["ts"]
    p = parse(_rmc("000000", "0000.000,N", "00000.000,E", "060180"))
    assert p["ts"] == 315964800000, "yy 80 is 1980, the GPS epoch: %r" % p["ts"]
    p = parse(RMC_UBLOX)
    assert (p["lat"], p["lon"]) == (472852395, 85652537), p  # 5-digit minutes, rounded
    assert p["ts"] == 1039422959000 and p["time_ms"] == 8 * 3600000 + 35 * 60000 + 59000, p


def test_minutes_convert_exactly_without_floats():
    # 31 deg 13.8241 min = 31.230401666... deg -> 312304017 (rounded to the nearest 1e-7).
    p = parse(_rmc("120000", "3113.8241,N", "12100.0000,E", "010124"))
    assert p["lat"] == 312304017, p["lat"]
    assert p["lon"] == 1210000000, p["lon"]
    for key, value in p.items():
        assert not isinstance(value, float), "%s is a float: %r" % (key, value)


def test_southern_and_western_hemispheres_are_negative():
    p = parse(RMC_WEST)  # Vancouver
    assert (p["lat"], p["lon"]) == (492741667, -1231853333), p
    p = parse(_rmc("010203", "3351.408,S", "15112.918,E", "150624"))  # Sydney
    assert (p["lat"], p["lon"]) == (-338568000, 1512153000), p
    p = parse(_gga("010203", "2254.650,S", "04310.500,W"))  # Rio de Janeiro
    assert (p["lat"], p["lon"]) == (-229108333, -431750000), p


def test_gga_gives_quality_satellites_and_accuracy():
    p = parse(GGA_1994)
    assert p["type"] == "GGA" and p["valid"] and p["quality"] == 1, p
    assert p["sats"] == 8 and p["hdop_x100"] == 90 and p["acc"] == 5, p  # 0.9 * 5 m = 4.5 -> 5
    p = parse(GGA_UBLOX)
    assert (p["lat"], p["lon"]) == (472852332, 85652650), p
    assert p["acc"] == 5, p  # HDOP 1.01 -> 5.05 m -> 5
    assert p["time_ms"] == (9 * 3600 + 27 * 60 + 25) * 1000, p


def test_void_rmc_and_quality_zero_are_no_fix():
    assert parse(RMC_VOID)["valid"] is False
    assert parse(GGA_NOFIX)["valid"] is False
    gps = GpsReader()
    gps.feed_line(RMC_1994, now_ms=1000)
    assert gps.fix(now_ms=1000) is not None
    gps.feed_line(RMC_VOID, now_ms=2000)
    assert gps.fix(now_ms=2000) is None, "a void RMC means the receiver lost its fix"
    gps.feed_line(GGA_1994, now_ms=3000)
    assert gps.fix(now_ms=3000) is not None
    gps.feed_line(GGA_NOFIX, now_ms=4000)
    assert gps.fix(now_ms=4000) is None, "GGA quality 0 means no fix"
    gps.feed_line(_rmc("123519", "4807.038,N", "01131.000,E", "230394", status="V"), now_ms=5000)
    assert gps.fix(now_ms=5000) is None


def test_bad_checksums_and_garbage_are_ignored_and_counted():
    gps = GpsReader()
    gps.feed_line(RMC_1994, now_ms=0)
    before = gps.fix(now_ms=0)
    bad = [
        RMC_1994[:-2] + "6B",  # wrong checksum
        RMC_1994.replace("4807.038", "4807.039"),  # a flipped digit, old checksum
        RMC_1994[:-3],  # no checksum at all
        "$GPRMC,123519,A,48*ZZ",
        "\x00\xff garbage",
        _nmea("GPRMC,123519,A,48O7.038,N,01131.000,E,0,0,230394,,"),  # letter O: malformed
        _nmea("GPRMC,123519,A,4807.038,X,01131.000,E,0,0,230394,,"),  # no such hemisphere
        _nmea("GPRMC,123519,A,4860.000,N,01131.000,E,0,0,230394,,"),  # 60 minutes
        _nmea("GPRMC,123519,A,4807.038,N,01131.000,E,0,0,320394,,"),  # 32nd of March
    ]
    for line in bad:
        assert parse(line) is None, "must be refused: %r" % line
        gps.feed_line(line, now_ms=1)
    assert gps.bad == len(bad) and gps.good == 1, (gps.bad, gps.good)
    assert gps.fix(now_ms=1) == before, "bad lines do not move the fix"
    gps.feed_line(_nmea("GPGSV,1,1,00"), now_ms=1)
    assert gps.other == 1 and gps.bad == len(bad), "a good sentence we do not read is not bad"


def test_fix_merges_rmc_and_gga_of_the_same_second():
    gps = GpsReader()
    gps.feed_line(RMC_1994, now_ms=100)
    fix = gps.fix(now_ms=100)
    want = {"lat": 481173000, "lon": 115166667, "acc": None, "ts": 764426119000, "sats": None, "prov": "gps"}
    assert fix == want, fix
    gps.feed_line(GGA_1994, now_ms=150)
    fix = gps.fix(now_ms=200)
    want["acc"] = 5
    want["sats"] = 8
    assert fix == want, "the GGA of the same second adds accuracy and satellites: %r" % fix
    for key, value in fix.items():
        assert key == "prov" or isinstance(value, int), "%s must be an int: %r" % (key, value)


def test_gga_takes_the_date_of_the_last_rmc():
    gps = GpsReader()
    gps.feed_line(_gga("101500.50", "5130.00000,N", "00007.50000,W"), now_ms=0)
    fix = gps.fix(now_ms=0)
    assert fix["ts"] is None and fix["lat"] == 515000000, "no date seen yet: %r" % fix
    gps.feed_line(_rmc("101501.00", "5130.00000,N", "00007.50000,W", "290224"), now_ms=500)
    gps.feed_line(_gga("101502.25", "5130.00010,N", "00007.50000,W"), now_ms=1000)
    fix = gps.fix(now_ms=1000)
    want = 1709201702250  # 2024-02-29T10:15:02.250Z
    assert fix["ts"] == want and fix["lon"] == -1250000, fix
    assert fix["acc"] == 6 and fix["sats"] == 9, fix  # HDOP 1.20 -> 6 m


def test_gga_after_midnight_moves_to_the_next_day():
    gps = GpsReader()
    gps.feed_line(_rmc("235959", "5130.0,N", "00007.5,W", "290224"), now_ms=0)
    assert gps.fix(now_ms=0)["ts"] == 1709251199000  # 2024-02-29T23:59:59Z
    gps.feed_line(_gga("000001", "5130.0,N", "00007.5,W"), now_ms=2000)
    assert gps.fix(now_ms=2000)["ts"] == 1709251201000, "2024-03-01T00:00:01Z"


def test_a_stale_fix_is_not_returned():
    gps = GpsReader(max_age_ms=10000)
    gps.feed_line(RMC_1994, now_ms=5000)
    gps.feed_line(GGA_1994, now_ms=5000)
    assert gps.fix(now_ms=15000) is not None, "exactly max_age old still counts"
    assert gps.fix(now_ms=15001) is None, "older than max_age_ms"
    gps.feed_line(RMC_1994, now_ms=20000)
    fix = gps.fix(now_ms=20000)
    assert fix is not None and fix["acc"] is None, "the GGA data went stale: %r" % fix


def test_fix_age_survives_ticks_wraparound():
    import time

    near_wrap = time.ticks_add(0, -3000)  # 3 s before the ticks counter wraps
    gps = GpsReader()
    gps.feed_line(RMC_1994, now_ms=near_wrap)
    assert gps.fix(now_ms=time.ticks_add(near_wrap, 5000)) is not None
    assert gps.fix(now_ms=time.ticks_add(near_wrap, 11000)) is None


def test_feed_splits_uart_chunks_into_lines():
    gps = GpsReader()
    stream = b"\xff\x00$GPGSV,3,1,11,03,03,111,00*\r\n"
    stream += RMC_1994.encode() + b"\r\n" + GGA_1994.encode() + b"\r\n"
    stream += b"$GPRMC,noise with no end" * 10
    for i in range(0, len(stream), 7):
        gps.feed(stream[i : i + 7], now_ms=10)
    assert gps.good == 2 and gps.bad >= 2, (gps.good, gps.bad)
    fix = gps.fix(now_ms=10)
    assert fix["sats"] == 8 and fix["ts"] == 764426119000, fix
    gps.feed(b"\n" + RMC_WEST.encode() + b"\n", now_ms=20)
    assert gps.fix(now_ms=20)["lon"] == -1231853333, "a line after the junk still counts"


def test_noise_before_the_dollar_is_skipped():
    p = parse("\x00\x13" + RMC_1994 + "\r\n")
    assert p is not None and p["lat"] == 481173000, p
    p = parse(b"$GPRMC,12" + GGA_1994.encode())  # a sentence cut short by a reset
    assert p is not None and p["type"] == "GGA", p
