"""The lexicon of the generated catalog: categories, product types, attributes, options.

WebShop's catalog was scraped from a web store in five coarse categories (beauty, electronics,
fashion, garden = furniture and home, grocery; docs/webshop.md section 1.1). Its data cannot be had
here, so :mod:`agentropy.envs.webshop.catalog` generates products from this lexicon instead. Each
:class:`ProductType` plays the part of one scrape query: the products made from it share the
``query`` phrase and the breadcrumb, as products scraped under one query do in WebShop.

Everything here is ASCII except the breadcrumb separator (U+203A, as in WebShop), which is
never shown to the agent. Attribute phrases are short lowercase phrases like WebShop's mined
attributes; option values are lowercase, with ``|`` between the parts of two-part values
(WebShop turns ``Thyme/White`` into ``thyme | white``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BREADCRUMB_SEP",
    "CATEGORIES",
    "MODIFIERS",
    "ProductType",
    "BRAND_SYLLABLES",
    "TITLE_DESCRIPTORS",
    "USES",
]

#: Breadcrumb separator of WebShop's ``product_category`` field.
BREADCRUMB_SEP = " \u203a "


@dataclass(frozen=True)
class ProductType:
    """One kind of product, the unit a WebShop scrape query stands for.

    Attributes:
        query: the search phrase the products were "scraped under" (lowercase); goals name it
            and the type reward compares it exactly.
        path: the breadcrumb, from the store's top level to the leaf.
        heads: title head phrases (lowercase); every head contains every word of ``nouns``.
        nouns: the type's own nouns; with the brand they are a title's nouns for the type reward.
        attributes: the type's attribute pool (the category adds :data:`CATEGORY_ATTRIBUTES`).
        options: option groups as (name, value pool); a product offers a subset of each pool.
        price: (low, high) dollars of the base price.
    """

    query: str
    path: tuple[str, ...]
    heads: tuple[str, ...]
    nouns: tuple[str, ...]
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price: tuple[float, float]


def _t(query, path, heads, nouns, attributes, options, price) -> ProductType:
    return ProductType(query, tuple(path), tuple(heads), tuple(nouns), tuple(attributes),
                       tuple((name, tuple(values)) for name, values in options), price)


# --------------------------------------------------------------------------- option pools
APPAREL_COLORS = (
    "black", "white", "navy blue", "heather grey", "red", "burgundy", "olive green", "khaki",
    "light blue", "pink", "beige", "charcoal", "royal blue", "dark green", "purple", "yellow",
    "orange", "brown", "teal", "wine red", "army green", "sky blue", "coral", "mint green",
    "black | white", "grey | white", "green stripe", "blue floral", "leopard print", "camo",
)
CLOTHING_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large", "3x-large")
SHOE_SIZES = ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13")
SHOE_WIDTHS = ("narrow", "regular width", "wide", "extra wide")
HAIR_COLORS = (
    "jet black", "natural black", "dark brown", "medium brown", "chestnut brown", "ash blonde",
    "golden blonde", "platinum blonde", "auburn", "burgundy red", "ombre brown",
    "highlighted blonde", "silver grey",
)
LENGTHS_INCH = ("12 inch", "14 inch", "16 inch", "18 inch", "20 inch", "22 inch", "24 inch")
LIP_COLORS = (
    "ruby red", "nude pink", "berry", "coral crush", "mauve", "classic red", "plum", "rose nude",
    "brick red", "hot pink", "caramel", "wine",
)
NAIL_COLORS = (
    "ballet pink", "cherry red", "midnight blue", "clear", "french white", "lilac", "gold glitter",
    "emerald", "nude beige", "black onyx", "peach", "lavender",
)
SCENTS = (
    "lavender", "citrus", "unscented", "coconut", "peppermint", "rose", "eucalyptus", "vanilla",
    "fresh linen", "cucumber melon", "sandalwood", "ocean breeze",
)
LIQUID_SIZES = (
    "2 fl oz", "4 fl oz", "8 fl oz", "12 fl oz", "16 fl oz", "33.8 fl oz", "8 fl oz (pack of 2)",
    "16 fl oz (pack of 3)",
)
CREAM_SIZES = ("1 ounce", "1.7 ounce", "2 ounce", "3.4 ounce", "4 ounce", "1.7 ounce (pack of 2)")
DEVICE_COLORS = (
    "black", "white", "silver", "space gray", "blue", "red", "rose gold", "green", "midnight black",
    "pink", "graphite", "navy",
)
CABLE_LENGTHS = ("1.5 feet", "3 feet", "6 feet", "10 feet", "15 feet", "25 feet", "50 feet")
PACKS = ("1 pack", "2 pack", "3 pack", "4 pack", "5 pack", "6 pack", "10 pack")
PHONE_MODELS = (
    "iphone 13", "iphone 13 pro", "iphone 14", "iphone 14 pro max", "iphone 15", "galaxy s22",
    "galaxy s23 ultra", "pixel 7", "pixel 8 pro",
)
CAPACITIES = ("5000mah", "10000mah", "20000mah", "26800mah", "30000mah")
STORAGE = ("8gb ram 256gb ssd", "16gb ram 512gb ssd", "16gb ram 1tb ssd", "32gb ram 1tb ssd",
           "8gb ram 128gb ssd")
SCREEN_SIZES = ("24 inch", "27 inch", "32 inch", "34 inch", "43 inch", "55 inch", "65 inch")
FURNITURE_COLORS = (
    "grey", "dark grey", "beige", "navy blue", "black", "white", "brown", "walnut", "natural wood",
    "espresso", "green velvet", "cream", "rustic brown", "light grey", "blue velvet",
)
BED_SIZES = ("twin", "twin xl", "full", "queen", "king", "california king")
SETS = ("set of 2", "set of 4", "set of 6", "single")
PILLOW_SIZES = ("16x16 inch", "18x18 inch", "20x20 inch", "22x22 inch", "12x20 inch")
CURTAIN_SIZES = ("42w x 63l", "42w x 84l", "52w x 63l", "52w x 84l", "52w x 95l", "52w x 108l")
RUG_SIZES = ("2x3 ft", "3x5 ft", "4x6 ft", "5x7 ft", "6x9 ft", "8x10 ft", "9x12 ft", "runner 2x8 ft")
HOSE_LENGTHS = ("25 ft", "50 ft", "75 ft", "100 ft", "150 ft")
LIGHT_COLORS = ("warm white", "cool white", "multicolor", "daylight white", "rgb color changing")
TEA_FLAVORS = (
    "jasmine", "original green", "lemon ginger", "mint", "honey", "matcha", "peach", "pomegranate",
    "earl grey", "chamomile",
)
COUNTS = (
    "20 count (pack of 6)", "16 count (pack of 4)", "100 count", "50 count", "12 count",
    "24 count", "18 count (pack of 3)", "40 count",
)
WEIGHTS = ("12 ounce", "16 ounce", "2 pound", "5 pound", "32 ounce", "8 ounce (pack of 2)",
           "1 pound (pack of 2)")
ROASTS = ("light roast", "medium roast", "dark roast", "espresso roast", "decaf")
GRINDS = ("whole bean", "ground", "fine ground")
BAR_FLAVORS = (
    "chocolate peanut butter", "cookies and cream", "chocolate chip cookie dough", "birthday cake",
    "salted caramel", "mint chocolate", "almond coconut", "blueberry muffin", "lemon",
)
JERKY_FLAVORS = ("original", "teriyaki", "peppered", "sweet and spicy", "hickory smoked", "sriracha")
SNACK_FLAVORS = (
    "sea salt", "cheddar", "barbecue", "sour cream and onion", "rosemary olive oil", "everything",
    "jalapeno", "honey mustard",
)
SAUCE_HEAT = ("mild", "medium hot", "extra hot", "ghost pepper", "habanero", "chipotle")
OIL_SIZES = ("16.9 fl oz", "25.3 fl oz", "33.8 fl oz", "51 fl oz", "101 fl oz", "3 liter")
CANDY_FLAVORS = ("assorted fruit", "sour mix", "strawberry", "watermelon", "cherry", "tropical",
                 "cola", "green apple")

# --------------------------------------------------------------------------- attribute pools
#: Attributes any product of the category can have, besides its type's own.
CATEGORY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "beauty": ("cruelty free", "paraben free", "long lasting", "easy apply", "high quality",
               "travel size", "dermatologist tested"),
    "electronics": ("easy install", "high speed", "easy carry", "plug and play", "durable design",
                    "compact size"),
    "fashion": ("machine wash", "hand wash", "daily wear", "soft material", "comfortable fit",
                "fashion design"),
    "garden": ("easy assemble", "living room", "easy clean", "space saving", "storage space",
               "high density"),
    "grocery": ("gluten free", "non gmo", "great gift", "individually wrapped", "ready to eat",
                "shelf stable", "plant based"),
}

# --------------------------------------------------------------------------- product types
BEAUTY = "Beauty & Personal Care"
ELEC = "Electronics"
CLOTH = "Clothing, Shoes & Jewelry"
HOME = "Home & Kitchen"
PATIO = "Patio, Lawn & Garden"
FOOD = "Grocery & Gourmet Food"

CATEGORIES: dict[str, tuple[ProductType, ...]] = {
    "beauty": (
        _t("shampoo", (BEAUTY, "Hair Care", "Shampoo & Conditioner", "Shampoos"),
           ("shampoo", "moisturizing shampoo", "clarifying shampoo", "volumizing shampoo"),
           ("shampoo",),
           ("tea tree", "sulfate free", "natural ingredients", "essential oils", "dry hair",
            "hair growth", "damaged hair", "color treated", "argan oil", "hair loss"),
           (("scent", SCENTS), ("size", LIQUID_SIZES)), (6, 38)),
        _t("hair extensions", (BEAUTY, "Hair Care", "Hair Extensions, Wigs & Accessories",
                               "Hair Extensions"),
           ("clip in hair extensions", "hair extensions", "tape in hair extensions",
            "halo hair extensions"),
           ("hair", "extensions"),
           ("natural looking", "heat resistant", "human hair", "synthetic hair", "hair salon",
            "double weft", "straight hair", "curly hair", "seamless blend"),
           (("color", HAIR_COLORS), ("size", LENGTHS_INCH)), (14, 120)),
        _t("lipstick", (BEAUTY, "Makeup", "Lips", "Lipstick"),
           ("matte lipstick", "liquid lipstick", "lipstick", "satin lipstick"),
           ("lipstick",),
           ("highly pigmented", "matte finish", "waterproof formula", "smudge proof", "vitamin e",
            "shea butter", "non drying"),
           (("color", LIP_COLORS),), (4, 32)),
        _t("face moisturizer", (BEAUTY, "Skin Care", "Face", "Creams & Moisturizers",
                                "Face Moisturizers"),
           ("face moisturizer", "daily face moisturizer", "night face moisturizer",
            "gel face moisturizer"),
           ("face", "moisturizer"),
           ("fine lines", "dry skin", "sensitive skin", "hyaluronic acid", "fragrance free",
            "anti aging", "oil free", "vitamin c", "dark spots", "green tea"),
           (("size", CREAM_SIZES),), (8, 75)),
        _t("nail polish", (BEAUTY, "Foot, Hand & Nail Care", "Nail Art & Polish", "Nail Polish"),
           ("nail polish", "gel nail polish", "nail polish set"),
           ("nail", "polish"),
           ("quick dry", "non toxic", "gel polish", "nail art", "high gloss", "chip resistant"),
           (("color", NAIL_COLORS), ("size", ("0.5 fl oz", "0.5 fl oz (pack of 2)",
                                              "0.27 fl oz (pack of 6)"))), (5, 28)),
        _t("makeup brush set", (BEAUTY, "Tools & Accessories", "Makeup Brushes & Tools",
                                "Brush Sets"),
           ("makeup brush set", "professional makeup brush set", "travel makeup brush set"),
           ("makeup", "brush"),
           ("synthetic hair", "easy clean", "soft bristles", "foundation brush", "eye shadow",
            "storage case"),
           (("color", ("rose gold", "black", "pink marble", "white | gold", "champagne gold",
                       "purple")),), (7, 45)),
        _t("body wash", (BEAUTY, "Personal Care", "Bath & Bathing Accessories", "Body Washes"),
           ("body wash", "moisturizing body wash", "exfoliating body wash", "foaming body wash"),
           ("body", "wash"),
           ("tea tree", "natural ingredients", "sensitive skin", "essential oils", "dry skin",
            "coconut oil", "shea butter", "oat milk"),
           (("scent", SCENTS), ("size", LIQUID_SIZES)), (5, 30)),
        _t("eyeshadow palette", (BEAUTY, "Makeup", "Eyes", "Eyeshadow"),
           ("eyeshadow palette", "matte eyeshadow palette", "shimmer eyeshadow palette"),
           ("eyeshadow", "palette"),
           ("highly pigmented", "blendable formula", "matte finish", "shimmer finish",
            "eye makeup", "vegan formula"),
           (("color", ("warm neutrals", "cool tones", "smoky", "rose gold", "sunset", "jewel tones",
                       "nude")),), (6, 54)),
    ),
    "electronics": (
        _t("wireless earbuds", (ELEC, "Headphones, Earbuds & Accessories", "Headphones & Earbuds",
                                "Earbud Headphones"),
           ("wireless earbuds", "bluetooth earbuds", "true wireless earbuds", "sport earbuds"),
           ("earbuds",),
           ("noise cancelling", "long battery life", "water resistant", "fast charging",
            "hands free", "charging case", "touch control", "stereo sound", "deep bass"),
           (("color", DEVICE_COLORS),), (16, 230)),
        _t("hdmi cable", (ELEC, "Television & Video", "Accessories", "Cables", "HDMI Cables"),
           ("hdmi cable", "high speed hdmi cable", "braided hdmi cable", "8k hdmi cable"),
           ("hdmi", "cable"),
           ("gold plated", "ultra hd", "4k resolution", "ethernet support", "nylon braided",
            "audio return"),
           (("size", CABLE_LENGTHS), ("pack", PACKS)), (6, 45)),
        _t("phone case", (ELEC, "Cell Phones & Accessories", "Cases, Holsters & Sleeves", "Basic Cases"),
           ("phone case", "clear phone case", "rugged phone case", "wallet phone case"),
           ("phone", "case"),
           ("shock absorbing", "wireless charging", "slim design", "card holder", "kickstand",
            "scratch resistant", "raised edges"),
           (("color", DEVICE_COLORS), ("style", PHONE_MODELS)), (7, 40)),
        _t("power bank", (ELEC, "Cell Phones & Accessories", "Chargers & Power Adapters",
                          "Portable Power Banks"),
           ("power bank", "portable charger power bank", "solar power bank"),
           ("power", "bank"),
           ("fast charging", "usb port", "high capacity", "led display", "usb c", "dual output"),
           (("color", DEVICE_COLORS), ("capacity", CAPACITIES)), (12, 90)),
        _t("bluetooth speaker", (ELEC, "Portable Audio & Video", "Portable Speakers & Docks",
                                 "Portable Bluetooth Speakers"),
           ("bluetooth speaker", "portable bluetooth speaker", "waterproof bluetooth speaker"),
           ("speaker",),
           ("water resistant", "long battery life", "stereo sound", "deep bass", "outdoor party",
            "hands free"),
           (("color", DEVICE_COLORS),), (18, 260)),
        _t("security camera", (ELEC, "Camera & Photo", "Video Surveillance", "Surveillance Cameras",
                               "Dome Cameras"),
           ("security camera", "outdoor security camera", "wifi security camera", "dome camera"),
           ("camera",),
           ("night vision", "motion detection", "two way audio", "1080p hd", "cloud storage",
            "weatherproof design", "remote access"),
           (("size", PACKS),), (25, 320)),
        _t("laptop computer", (ELEC, "Computers & Accessories", "Computers & Tablets", "Laptops",
                               "Traditional Laptops"),
           ("laptop computer", "gaming laptop computer", "business laptop computer",
            "thin laptop computer"),
           ("laptop", "computer"),
           ("high performance", "quad core", "hd display", "backlit keyboard", "fingerprint reader",
            "long battery life", "intel core"),
           (("color", ("silver", "black", "space gray", "blue")), ("capacity", STORAGE)),
           (380, 2400)),
        _t("computer monitor", (ELEC, "Computers & Accessories", "Monitors"),
           ("computer monitor", "gaming monitor", "curved computer monitor", "ips monitor"),
           ("monitor",),
           ("high refresh rate", "eye care", "ultra thin", "frameless design", "hdmi port",
            "wall mountable", "adaptive sync"),
           (("size", SCREEN_SIZES),), (95, 1300)),
    ),
    "fashion": (
        _t("women's jumpsuits, rompers & overalls", (CLOTH, "Women", "Clothing",
                                                     "Jumpsuits, Rompers & Overalls"),
           ("women's jumpsuit", "women's casual jumpsuit", "women's overall jumpsuit",
            "women's romper jumpsuit"),
           ("jumpsuit",),
           ("slim fit", "short sleeve", "high waist", "polyester spandex", "wide leg", "long sleeve",
            "button closure", "elastic waist"),
           (("color", APPAREL_COLORS), ("size", CLOTHING_SIZES)), (15, 60)),
        _t("men's t-shirts", (CLOTH, "Men", "Clothing", "Shirts", "T-Shirts"),
           ("men's t-shirt", "men's crew neck t-shirt", "men's v-neck t-shirt", "men's graphic t-shirt"),
           ("t-shirt",),
           ("short sleeve", "classic fit", "long sleeve", "regular fit", "cotton jersey",
            "moisture wicking", "crew neck", "relaxed fit"),
           (("color", APPAREL_COLORS), ("size", CLOTHING_SIZES)), (8, 35)),
        _t("men's running shoes", (CLOTH, "Men", "Shoes", "Athletic", "Running"),
           ("men's running shoes", "men's trail running shoes", "men's lightweight running shoes"),
           ("shoes",),
           ("non slip", "rubber sole", "arch support", "lace up", "memory foam", "breathable mesh",
            "shock absorption"),
           (("color", APPAREL_COLORS), ("size", SHOE_SIZES), ("width", SHOE_WIDTHS)), (35, 160)),
        _t("women's sandals", (CLOTH, "Women", "Shoes", "Sandals", "Flat Sandals"),
           ("women's sandals", "women's flat sandals", "women's platform sandals",
            "women's slide sandals"),
           ("sandals",),
           ("open toe", "ankle strap", "arch support", "non slip", "rubber sole", "memory foam",
            "beach vacation"),
           (("color", APPAREL_COLORS), ("size", SHOE_SIZES)), (18, 70)),
        _t("women's dresses", (CLOTH, "Women", "Clothing", "Dresses", "Casual"),
           ("women's maxi dress", "women's summer dress", "women's wrap dress", "women's midi dress"),
           ("dress",),
           ("short sleeve", "v neck", "floral print", "high waist", "flowy swing", "side pockets",
            "long sleeve", "party wear"),
           (("color", APPAREL_COLORS), ("size", CLOTHING_SIZES)), (20, 90)),
        _t("women's leggings", (CLOTH, "Women", "Clothing", "Active", "Active Leggings"),
           ("women's leggings", "women's yoga leggings", "women's workout leggings"),
           ("leggings",),
           ("high waist", "tummy control", "butt lifting", "moisture wicking", "four way stretch",
            "side pockets", "squat proof"),
           (("color", APPAREL_COLORS), ("size", CLOTHING_SIZES)), (12, 45)),
        _t("men's hoodies", (CLOTH, "Men", "Clothing", "Fashion Hoodies & Sweatshirts"),
           ("men's pullover hoodie", "men's zip up hoodie", "men's fleece hoodie"),
           ("hoodie",),
           ("long sleeve", "fleece lined", "drawstring hood", "kangaroo pocket", "regular fit",
            "cotton blend"),
           (("color", APPAREL_COLORS), ("size", CLOTHING_SIZES)), (20, 65)),
        _t("men's socks", (CLOTH, "Men", "Clothing", "Socks", "Athletic Socks"),
           ("men's athletic socks", "men's crew socks", "men's ankle socks", "men's dress socks"),
           ("socks",),
           ("moisture wicking", "cushioned sole", "arch compression", "cotton blend", "breathable mesh",
            "odor control"),
           (("color", APPAREL_COLORS), ("size", ("shoe size 6-9", "shoe size 9-12", "shoe size 12-15")),
            ("pack", ("6 pairs", "8 pairs", "10 pairs", "12 pairs"))), (8, 30)),
    ),
    "garden": (
        _t("sofas and couches", (HOME, "Furniture", "Living Room Furniture", "Sofas & Couches"),
           ("sofa couch", "sectional sofa couch", "loveseat sofa", "convertible sofa"),
           ("sofa",),
           ("solid wood", "mid century", "faux leather", "high density foam", "removable cushions",
            "small spaces", "velvet fabric"),
           (("color", FURNITURE_COLORS),), (180, 1600)),
        _t("dining chairs", (HOME, "Furniture", "Kitchen & Dining Room Furniture", "Chairs"),
           ("dining chairs", "upholstered dining chairs", "modern dining chairs",
            "wooden dining chairs"),
           ("dining", "chairs"),
           ("dining room", "solid wood", "metal legs", "non slip", "faux leather", "high back",
            "velvet fabric"),
           (("color", FURNITURE_COLORS), ("size", SETS)), (45, 420)),
        _t("bed sheets", (HOME, "Bedding", "Sheets & Pillowcases", "Sheet & Pillowcase Sets"),
           ("bed sheets set", "microfiber bed sheets", "cotton bed sheets", "cooling bed sheets"),
           ("bed", "sheets"),
           ("deep pocket", "machine washable", "wrinkle free", "super soft", "breathable fabric",
            "fade resistant", "egyptian cotton"),
           (("color", FURNITURE_COLORS), ("size", BED_SIZES)), (18, 140)),
        _t("throw pillow covers", (HOME, "Home Decor Products", "Decorative Pillows, Inserts & Covers",
                                   "Throw Pillow Covers"),
           ("throw pillow covers", "decorative throw pillow covers", "velvet throw pillow covers"),
           ("pillow", "covers"),
           ("double sided", "hidden zipper", "machine washable", "farmhouse decor", "soft velvet",
            "linen fabric"),
           (("color", FURNITURE_COLORS), ("size", PILLOW_SIZES)), (8, 40)),
        _t("blackout curtains", (HOME, "Home Decor Products", "Window Treatments", "Curtains & Drapes",
                                 "Panels"),
           ("blackout curtains", "thermal insulated blackout curtains", "grommet blackout curtains"),
           ("curtains",),
           ("thermal insulated", "noise reducing", "grommet top", "room darkening", "bedroom window",
            "machine washable"),
           (("color", FURNITURE_COLORS), ("size", CURTAIN_SIZES)), (14, 75)),
        _t("area rugs", (HOME, "Home Decor Products", "Area Rugs, Runners & Pads", "Area Rugs"),
           ("area rug", "shag area rug", "vintage area rug", "washable area rug"),
           ("rug",),
           ("non slip", "low pile", "stain resistant", "pet friendly", "non shedding", "dining room",
            "machine washable"),
           (("color", FURNITURE_COLORS), ("size", RUG_SIZES)), (25, 480)),
        _t("garden hose", (PATIO, "Watering Equipment", "Garden Hoses"),
           ("garden hose", "expandable garden hose", "heavy duty garden hose"),
           ("garden", "hose"),
           ("kink free", "leak proof", "lightweight hose", "brass fittings", "spray nozzle",
            "easy storage"),
           (("size", HOSE_LENGTHS), ("color", ("green", "blue", "black", "grey", "red"))), (19, 110)),
        _t("string lights", (PATIO, "Outdoor Decor", "Outdoor Lighting", "String Lights"),
           ("led string lights", "outdoor string lights", "solar string lights", "fairy string lights"),
           ("string", "lights"),
           ("waterproof design", "remote control", "timer function", "energy saving", "patio decor",
            "bedroom decor", "battery operated"),
           (("color", LIGHT_COLORS), ("size", ("33 ft", "48 ft", "66 ft", "100 ft"))), (9, 60)),
    ),
    "grocery": (
        _t("green tea", (FOOD, "Beverages", "Coffee, Tea & Cocoa", "Tea", "Green Tea"),
           ("green tea bags", "green tea", "loose leaf green tea", "matcha green tea"),
           ("tea",),
           ("usda organic", "caffeine free", "low calorie", "antioxidant rich", "sugar free",
            "natural flavors"),
           (("flavor name", TEA_FLAVORS), ("size", COUNTS)), (4, 32)),
        _t("coffee beans", (FOOD, "Beverages", "Coffee, Tea & Cocoa", "Coffee", "Whole Coffee Beans"),
           ("coffee beans", "whole bean coffee", "arabica coffee beans"),
           ("coffee",),
           ("single origin", "fair trade", "usda organic", "small batch", "low acid", "arabica beans"),
           (("style", ROASTS), ("size", WEIGHTS), ("grind", GRINDS)), (9, 58)),
        _t("protein bars", (FOOD, "Snack Foods", "Bars", "Protein Bars"),
           ("protein bars", "high protein bars", "keto protein bars", "plant protein bars"),
           ("protein", "bars"),
           ("high protein", "low carb", "keto friendly", "low sugar", "dairy free", "soy free",
            "meal replacement"),
           (("flavor name", BAR_FLAVORS), ("size", COUNTS)), (12, 48)),
        _t("beef jerky", (FOOD, "Meat & Seafood", "Jerky & Dried Meats", "Beef Jerky"),
           ("beef jerky", "grass fed beef jerky", "thick cut beef jerky"),
           ("beef", "jerky"),
           ("high protein", "low fat", "grass fed", "no preservatives", "low sugar", "keto friendly"),
           (("flavor name", JERKY_FLAVORS), ("size", WEIGHTS)), (8, 55)),
        _t("snack crackers", (FOOD, "Snack Foods", "Crackers", "Snack Crackers"),
           ("snack crackers", "whole grain crackers", "cheese crackers", "seed crackers"),
           ("crackers",),
           ("whole grain", "low sodium", "baked crackers", "party snacks", "lunch box",
            "vegan friendly"),
           (("flavor name", SNACK_FLAVORS), ("size", COUNTS)), (3, 28)),
        _t("extra virgin olive oil", (FOOD, "Pantry Staples", "Cooking & Baking", "Oils",
                                      "Olive Oils"),
           ("extra virgin olive oil", "cold pressed olive oil", "italian olive oil"),
           ("olive", "oil"),
           ("cold pressed", "first cold", "single estate", "polyphenol rich", "usda organic",
            "glass bottle"),
           (("size", OIL_SIZES),), (9, 70)),
        _t("hot sauce", (FOOD, "Pantry Staples", "Condiments & Salad Dressings", "Sauces",
                         "Hot Sauce"),
           ("hot sauce", "chili hot sauce", "small batch hot sauce"),
           ("sauce",),
           ("small batch", "no sugar", "low sodium", "fermented peppers", "gift set", "bold flavor"),
           (("style", SAUCE_HEAT), ("size", ("5 fl oz", "10 fl oz", "5 fl oz (pack of 3)",
                                             "12 fl oz (pack of 2)"))), (5, 36)),
        _t("gummy candy", (FOOD, "Candy & Chocolate", "Gummy Candy"),
           ("gummy candy", "sour gummy candy", "gummy bears candy", "vegan gummy candy"),
           ("candy",),
           ("fat free", "real fruit", "party favors", "bulk candy", "resealable bag",
            "artificial colors"),
           (("flavor name", CANDY_FLAVORS), ("size", WEIGHTS)), (4, 30)),
    ),
}

#: Head-phrase words that are not nouns (a tiny part-of-speech lexicon for the type reward).
MODIFIERS = frozenset(
    """
    moisturizing clarifying volumizing clip in tape halo matte liquid satin daily night gel
    professional travel exfoliating foaming shimmer wireless bluetooth true sport high speed braided
    8k clear rugged wallet portable charger solar waterproof outdoor wifi dome gaming business thin
    curved ips women's men's wide leg crew neck v-neck graphic trail lightweight flat platform slide
    maxi summer wrap midi yoga workout pullover zip up fleece athletic ankle sectional loveseat casual
    convertible upholstered modern wooden set microfiber cotton cooling decorative velvet thermal
    insulated grommet shag vintage washable expandable heavy duty led fairy bags loose leaf matcha
    whole bean arabica keto plant grass fed thick cut grain cheese seed extra virgin cold pressed
    italian chili small batch sour bears vegan
    """.split()
)

#: Words put in front of a title's head, per category (never attributes, never nouns).
TITLE_DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "beauty": ("Premium", "Professional", "Salon Grade", "Gentle", "Advanced", "Ultra", "Luxury",
               "Everyday", "Pure", "Botanical"),
    "electronics": ("Upgraded", "2024 New", "Pro", "Ultra", "Smart", "Next Gen", "Max", "Lite",
                    "Elite", "Plus"),
    "fashion": ("Casual", "Classic", "Fashion", "Summer", "Winter", "Vintage", "Basic", "Trendy",
                "Essential", "Urban"),
    "garden": ("Modern", "Farmhouse", "Rustic", "Contemporary", "Classic", "Elegant", "Boho",
               "Minimalist", "Cozy", "Coastal"),
    "grocery": ("Gourmet", "Premium", "Classic", "Family Size", "Artisan", "Original", "Signature",
                "Select", "Heritage", "Farm Fresh"),
}

#: Use phrases for descriptions, per category.
USES: dict[str, tuple[str, ...]] = {
    "beauty": ("your daily routine", "salon results at home", "gifting", "travel", "all skin types"),
    "electronics": ("home and office", "travel and commuting", "gaming", "outdoor adventures",
                    "everyday use"),
    "fashion": ("casual outings", "work and travel", "the gym", "weekends", "vacation"),
    "garden": ("the living room", "the bedroom", "small apartments", "the patio",
               "family gatherings"),
    "grocery": ("breakfast", "snacking on the go", "the whole family", "parties", "the office"),
}

#: Syllables of the made-up brand names (seeded draws; a brand is one title noun).
BRAND_SYLLABLES = (
    "lu", "mo", "ra", "vex", "ti", "ka", "zen", "do", "ver", "na", "so", "bri", "cal", "or", "fi",
    "tan", "el", "qui", "pol", "ar", "dex", "mi", "sa", "nor", "bel", "ko", "ly", "tor", "van", "ix",
)
