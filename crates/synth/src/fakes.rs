//! Fake values for the columns that carry no voter: names, addresses,
//! cities, phones, dates, districts, chosen by the column's name.

pub(crate) const FIRST: [&str; 32] = [
    "JAMES",
    "MARY",
    "JOHN",
    "PATRICIA",
    "ROBERT",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "WILLIAM",
    "ELIZABETH",
    "DAVID",
    "BARBARA",
    "JOSE",
    "MARIA",
    "WEI",
    "FATIMA",
    "DESHAWN",
    "AALIYAH",
    "CONNOR",
    "EMMA",
    "LUIS",
    "SOFIA",
    "OLIVIA",
    "NOAH",
    "AVA",
    "ETHAN",
    "CHLOE",
    "PRIYA",
    "KENJI",
    "AMARA",
    "DMITRI",
    "YOLANDA",
];
pub(crate) const LAST: [&str; 32] = [
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "NGUYEN",
    "OKAFOR",
    "KOWALSKI",
    "SCHROEDER",
    "FITZGERALD",
    "CHATTERJEE",
    "YAMAMOTO",
    "ABERNATHY",
    "VILLANUEVA",
];
/// Names with Latin-1 bytes (0xD1 = Ñ, 0xC9 = É, 0xE9 = é), as real files have.
pub(crate) const LATIN1_LAST: [&[u8]; 4] = [b"MU\xD1OZ", b"PE\xD1A", b"IBA\xD1EZ", b"ANDR\xC9"];
pub(crate) const LATIN1_FIRST: [&[u8]; 3] = [b"JOS\xC9", b"Ren\xE9e", b"ANDR\xC9S"];
/// Names with a nickname in quotes (escaped as `""` when fields are quoted).
pub(crate) const NICKNAMES: [&[u8]; 3] = [
    b"ROBERT \"BOB\" LEE",
    b"JAMES \"JIM\" EARL",
    b"MARY \"MOLLY\" ANN",
];
pub(crate) const SUFFIXES: [&str; 4] = ["JR", "SR", "II", "III"];
pub(crate) const STREETS: [&str; 16] = [
    "MAIN ST",
    "OAK AVE",
    "ELM ST",
    "PARK RD",
    "CEDAR LN",
    "MAPLE DR",
    "PINE ST",
    "LAKE RD",
    "HILL ST",
    "RIVER RD",
    "CHURCH ST",
    "MILL RD",
    "DOGWOOD CT",
    "MAGNOLIA WAY",
    "POPLAR BRANCH RD",
    "OLD STAGE HWY",
];
pub(crate) const CITIES: [&str; 12] = [
    "RALEIGH",
    "DURHAM",
    "COLUMBUS",
    "DAYTON",
    "TAMPA",
    "ORLANDO",
    "GREENVILLE",
    "SPRINGFIELD",
    "FRANKLIN",
    "CLINTON",
    "FAIRVIEW",
    "RIVERSIDE",
];
/// Columns the Feb 2026 NC files added; inserted by `quirks` into any file
/// with a header, before the registration date.
pub(crate) const EXTRA_COLUMNS: [&str; 3] = ["hava_id_req", "ssn", "no_dl_ssn_chkbx"];
/// Unknown values written into coded columns.
pub(crate) const UNKNOWN_TEXT: [&str; 2] = ["XYZ", "Q"];
pub(crate) const UNKNOWN_NUMERIC: [&str; 2] = ["99", "X"];
/// Candidate bad counties, by match kind.
pub(crate) const BAD_NAMES: [&str; 2] = ["ATLANTIS", "NARNIA"];
pub(crate) const BAD_CODES: [&str; 2] = ["999", "ZZZ"];
